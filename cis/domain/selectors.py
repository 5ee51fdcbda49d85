"""Kubernetes label selectors (equality- and set-based), parsed and matched in Python.

Used where CIS answers from its own caches instead of asking an apiserver: the instance
list and the gRPC watch. The grammar is the apiserver's: `app=web,tier!=db,env in (a,b),
!legacy,owner`. A selector that does not parse is an `InvalidInput` naming the request
field it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cis.domain import errors

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
      !\s*(?P<absent>{_KEY})
    | (?P<set_key>{_KEY})\s+(?P<set_op>in|notin)\s*\((?P<values>[^)]*)\)
    | (?P<cmp_key>{_KEY})\s*(?P<cmp_op>==|=|!=)\s*(?P<value>{_VALUE})
    | (?P<present>{_KEY})
    )\s*(?:,|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # notin (and !=): absent keys match


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes equality/set-based label selector; empty matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def parse_label_selector(text: str, field: str = "label_selector") -> LabelSelector:
    """`app=web,tier!=db,env in (a,b),!legacy`; raises `InvalidInput(field, ...)`."""
    requirements: list[Requirement] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _REQUIREMENT.match(text, pos)
        if m is None or m.end() == pos:
            raise errors.InvalidInput(field, f"cannot parse the selector at {text[pos : pos + 30]!r}")
        pos = m.end()
        if m["absent"]:
            requirements.append(Requirement(m["absent"], "!exists"))
        elif m["present"]:
            requirements.append(Requirement(m["present"], "exists"))
        elif m["set_key"]:
            values = [v.strip() for v in m["values"].split(",")]
            if not all(re.fullmatch(_VALUE, v) for v in values) or values == [""]:
                raise errors.InvalidInput(field, f"invalid values for {m['set_key']!r}")
            requirements.append(Requirement(m["set_key"], m["set_op"], frozenset(values)))
        else:
            op = "notin" if m["cmp_op"] == "!=" else "in"
            requirements.append(Requirement(m["cmp_key"], op, frozenset([m["value"]])))
        if text[pos - 1 : pos] == "," and pos == len(text):
            raise errors.InvalidInput(field, "ends with a comma")
    return LabelSelector(tuple(requirements))
