"""The `cis` command line: one sub-command family per concern, each registered by its module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from billing.cli import add_billing_commands
from cis.client_cli import add_client_commands
from cis.devstack.commands import add_dev_commands
from cis.main import add_serve_command
from cis_logging.cli import add_logging_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cis", description="CIS: serverless container instances")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_command(sub)
    add_dev_commands(sub)
    add_client_commands(sub)
    add_logging_commands(sub)
    add_billing_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run = getattr(args, "func", None) or args.handler  # billing's commands name it `handler`
    return int(run(args))


if __name__ == "__main__":
    sys.exit(main())
