"""`cis billing ...`: run, report and reconcile from the command line.

`add_billing_commands(subparsers)` adds the `billing` command to the `cis` argparse tree;
each leaf sets `handler`, a function `(argparse.Namespace) -> int` (the exit code) that the
`cis` main calls. `python -m billing.cli` runs the same commands standalone.

Environment is read here and only here: `CIS_ES_URL` is the default for `--es`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from billing import store
from billing.errors import BillingError
from billing.events import TenantId
from billing.prices import PriceTable, default_prices, load_prices
from billing.reconcile import reconcile
from billing.reports import parse_period
from billing.runner import RunSummary, next_window, run_billing, run_forever
from billing.service import ReportFormat, get_report

log = logging.getLogger(__name__)
_DURATION_RE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _time(text: str) -> datetime:
    """`2026-11-21` (midnight UTC) or RFC 3339; a time without offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or RFC 3339 time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _duration(text: str) -> timedelta:
    match = _DURATION_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 15m, 1h or 1d: {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--es",
        default=os.environ.get("CIS_ES_URL", "http://127.0.0.1:9200"),
        help="Elasticsearch URL (default: $CIS_ES_URL or http://127.0.0.1:9200)",
    )
    parser.add_argument("--prices", type=Path, help="price table YAML/JSON (default: shipped)")
    parser.add_argument("--events-index", default=store.EVENTS_INDEX, help="events index pattern")
    parser.add_argument("--usage-index", default=store.USAGE_INDEX, help="usage index")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def add_billing_commands(subparsers: Any) -> None:
    """Add `billing run|report|reconcile` to a `cis` subparsers object."""
    billing = subparsers.add_parser("billing", help="per-second billing from lifecycle events")
    commands = billing.add_subparsers(dest="billing_command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="bill a window (or keep billing with --loop)")
    _common(run)
    run.add_argument("--from", dest="start", type=_time, help="window start (its UTC day)")
    run.add_argument("--to", dest="end", type=_time, help="window end (exclusive)")
    run.add_argument("--loop", action="store_true", help="re-bill recent windows forever")
    run.add_argument("--recent", action="store_true",
                     help="bill once what one --loop tick bills, then exit (the mode for a CronJob)")
    run.add_argument("--interval", type=_duration, default=timedelta(hours=1),
                     help="--loop/--recent: windows end at multiples of this (default 1h)")
    run.add_argument("--lateness", type=_duration, default=timedelta(minutes=15),
                     help="--loop/--recent: how long to wait for late events (default 15m)")
    run.add_argument("--rebill", type=_duration, default=timedelta(days=1),
                     help="--loop/--recent: how far back each tick re-bills (default 1d)")
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser("report", help="usage report of a tenant and period")
    _common(report)
    report.add_argument("--tenant", help="tenant id (omit for all tenants)")
    report.add_argument("--period", required=True, help="YYYY-MM, YYYY-MM-DD or A..B")
    report.add_argument("--format", choices=[f.value for f in ReportFormat], default="json")
    report.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    report.set_defaults(handler=_cmd_report)

    check = commands.add_parser("reconcile", help="compare usage records with the events")
    _common(check)
    check.add_argument("--from", dest="start", type=_time, required=True)
    check.add_argument("--to", dest="end", type=_time, required=True)
    check.set_defaults(handler=_cmd_reconcile)


def _prices(args: argparse.Namespace) -> PriceTable:
    return load_prices(args.prices) if args.prices else default_prices()


def _indices(args: argparse.Namespace) -> store.Indices:
    return store.Indices(events=args.events_index, usage=args.usage_index)


def _print_json(body: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(body, indent=2) + "\n")


def _progress() -> Callable[[RunSummary], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(summary: RunSummary) -> None:
        sys.stderr.write(
            f"\r{summary.instances} instances, {summary.events} events, {summary.records_written} records written"
        )
        sys.stderr.flush()

    return show


async def _run(args: argparse.Namespace) -> int:
    prices = _prices(args)
    async with store.connect(args.es) as es:
        if args.loop:
            await run_forever(
                es,
                prices,
                interval=args.interval,
                lateness=args.lateness,
                rebill=args.rebill,
                indices=_indices(args),
            )
            return 0
        if args.recent:
            if args.start is not None or args.end is not None:
                raise BillingError("--recent computes the window; give it no --from or --to")
            start, end = next_window(datetime.now(UTC), interval=args.interval, lateness=args.lateness,
                                     rebill=args.rebill)
        elif args.start is None or args.end is None:
            raise BillingError("--from and --to are required unless --loop or --recent is given")
        else:
            start, end = args.start, args.end
        summary = await run_billing(es, prices, start, end, indices=_indices(args), progress=_progress())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    _print_json(summary.to_json())
    return 0 if summary.ok else 1


async def _report(args: argparse.Namespace) -> int:
    period = parse_period(args.period)
    async with store.connect(args.es) as es:
        rendered = await get_report(
            es,
            _prices(args),
            tenant=TenantId(args.tenant) if args.tenant else None,
            period=period,
            fmt=ReportFormat(args.format),
            index=args.usage_index,
        )
    if args.output:
        args.output.write_text(rendered.body, encoding="utf-8")
    else:
        sys.stdout.write(rendered.body)
    return 0


async def _reconcile(args: argparse.Namespace) -> int:
    async with store.connect(args.es) as es:
        result = await reconcile(es, _prices(args), args.start, args.end, indices=_indices(args))
    _print_json(result.to_json())
    return 0 if result.ok else 1


def _execute(args: argparse.Namespace, command: Any) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(asyncio.run(command(args)))
    except BillingError as exc:
        print(f"cis billing: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _cmd_run(args: argparse.Namespace) -> int:
    return _execute(args, _run)


def _cmd_report(args: argparse.Namespace) -> int:
    return _execute(args, _report)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    return _execute(args, _reconcile)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cis")
    add_billing_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
