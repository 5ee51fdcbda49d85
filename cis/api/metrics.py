"""Prometheus text exposition of a few counters and gauges, without a client library.

Labels are fixed per metric family; values are kept in plain dicts owned by one
`Metrics` object that the app factory creates (no module-level registry).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Metrics:
    counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    help: dict[str, str] = field(default_factory=dict)
    gauges: dict[str, Callable[[], dict[tuple[tuple[str, str], ...], float]]] = field(default_factory=dict)
    # Counters kept by their owners (e.g. each Kubernetes client), read at scrape time.
    counter_reads: dict[str, Callable[[], dict[tuple[tuple[str, str], ...], float]]] = field(default_factory=dict)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[name][tuple(sorted(labels.items()))] += value

    def describe(self, name: str, text: str) -> None:
        self.help[name] = text

    def gauge(self, name: str, text: str, read: Callable[[], dict[tuple[tuple[str, str], ...], float]]) -> None:
        self.help[name] = text
        self.gauges[name] = read

    def counter(self, name: str, text: str, read: Callable[[], dict[tuple[tuple[str, str], ...], float]]) -> None:
        self.help[name] = text
        self.counter_reads[name] = read

    def render(self) -> str:
        lines: list[str] = []
        counters = {**{n: dict(s) for n, s in self.counters.items()}, **{n: r() for n, r in self.counter_reads.items()}}
        for name, series in sorted(counters.items()):
            lines.append(f"# HELP {name} {self.help.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            lines += [f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items())]
        for name, read in sorted(self.gauges.items()):
            lines.append(f"# HELP {name} {self.help.get(name, name)}")
            lines.append(f"# TYPE {name} gauge")
            lines += [f"{name}{_labels(k)} {v:g}" for k, v in sorted(read().items())]
        return "\n".join(lines) + "\n"
