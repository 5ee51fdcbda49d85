"""`cis logging ...`: render the Filebeat configurations and manifests, set up Elasticsearch.

    cis logging render node|events|manifests [--out FILE] [--param KEY=VALUE ...]
    cis logging setup-es --es URL

Parameters are the fields of the dataclasses in `cis_logging.params`, flattened (each
kind's field names are unique); lists are comma-separated. A bad value exits with status 2
and names the parameter; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import tempfile
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cis_logging.errors import InvalidParameter, LoggingError
from cis_logging.params import (
    EventsConfigParams,
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
    check_url,
)
from cis_logging.rendering import render_events_config, render_manifests, render_node_config

KINDS = ("node", "events", "manifests")
_SECTIONS: dict[str, tuple[type[Any], ...]] = {
    "node": (OutputParams, PodLogsParams),
    "events": (OutputParams, EventsParams),
    "manifests": (ManifestParams, OutputParams, PodLogsParams),
}


def add_logging_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `logging` under the `cis` command (sets `func` on the parsed namespace)."""
    parser = subparsers.add_parser("logging", help="log pipeline: Filebeat configs, ES setup")
    sub = parser.add_subparsers(dest="logging_command", required=True)

    render = sub.add_parser("render", help="render a Filebeat configuration or the manifests")
    render.add_argument("kind", choices=KINDS)
    render.add_argument("--out", type=Path, help="write here instead of standard output")
    render.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="set a parameter (repeatable); see cis_logging.params")
    render.set_defaults(func=run_render)

    setup = sub.add_parser("setup-es", help="create index templates (idempotent)")
    setup.add_argument("--es", required=True, help="Elasticsearch URL")
    setup.set_defaults(func=run_setup_es)


def _convert(name: str, text: str, kind: Any) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise InvalidParameter(name, f"{text!r} must be true or false")
        return text.lower() == "true"
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise InvalidParameter(name, f"{text!r} is not an integer") from None
    if typing.get_origin(kind) is tuple:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return text


def parse_params(kind: str, raw: Sequence[str]) -> dict[type[Any], dict[str, Any]]:
    """KEY=VALUE strings → constructor arguments per parameter class of `kind`."""
    owners: dict[str, tuple[type[Any], Any]] = {}
    for cls in _SECTIONS[kind]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not dataclasses.is_dataclass(hints[f.name]):
                owners.setdefault(f.name, (cls, hints[f.name]))
    values: dict[type[Any], dict[str, Any]] = {cls: {} for cls in _SECTIONS[kind]}
    for item in raw:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise InvalidParameter(key or item, "expected KEY=VALUE")
        if key not in owners:
            raise InvalidParameter(key, f"unknown parameter for {kind}; known: "
                                   + ", ".join(sorted(owners)))
        cls, hint = owners[key]
        values[cls][key] = _convert(key, text, hint)
    return values


def build_and_render(kind: str, raw: Sequence[str]) -> str:
    """Validate every parameter, then render (pure apart from reading templates)."""
    values = parse_params(kind, raw)
    output = OutputParams(**values[OutputParams])
    if kind == "events":
        events = EventsParams(**values[EventsParams])
        return render_events_config(EventsConfigParams(output, events))
    pod_logs_args = dict(values[PodLogsParams])
    if kind == "node":
        return render_node_config(NodeConfigParams(output, PodLogsParams(**pod_logs_args)))
    pod_logs_args.setdefault("kubernetes_metadata", True)
    manifest_args = dict(values[ManifestParams])
    if "image" not in manifest_args:
        raise InvalidParameter("image", "is required for manifests "
                               "(e.g. image=REGISTRY/filebeat-oss:9.3.0)")
    node = NodeConfigParams(output, PodLogsParams(**pod_logs_args))
    return render_manifests(ManifestParams(node=node, **manifest_args))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _guarded(action: Callable[[], None]) -> int:
    try:
        action()
    except InvalidParameter as exc:
        print(f"cis logging: invalid parameter {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    except LoggingError as exc:
        print(f"cis logging: {exc}", file=sys.stderr)
        return 1
    return 0


def run_render(args: argparse.Namespace) -> int:
    def action() -> None:
        text = build_and_render(args.kind, args.param)
        if args.out is None:
            sys.stdout.write(text)
        else:
            _write_atomically(args.out, text)
    return _guarded(action)


def run_setup_es(args: argparse.Namespace) -> int:
    from elasticsearch import AsyncElasticsearch

    from cis_logging.es_setup import ensure_layout
    from cis_logging.layout import EsLayout

    async def setup() -> None:
        async with AsyncElasticsearch(check_url("es", args.es)) as es:
            result = await ensure_layout(es, EsLayout())
        print(f"templates {', '.join(result.templates)}; ILM {'on' if result.ilm else 'off'}")

    return _guarded(lambda: asyncio.run(setup()))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (`python -m cis_logging.cli render node`)."""
    parser = argparse.ArgumentParser(prog="cis")
    add_logging_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
