"""Label selectors that shard monitors across operator deployments: parsed and matched.

``SHARD_LABEL_SELECTOR`` gives one operator deployment the monitors whose labels match,
in Kubernetes' label selector syntax (the set-based subset ``kubectl -l`` takes):
``key=value`` (or ``==``), ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``,
``key`` (the label exists), ``!key`` (it does not); requirements separated by commas
all hold. Pure: the handlers ask :func:`LabelSelector.matches` for each monitor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_SET = re.compile(r"^(\S+)\s+(in|notin)\s*\(([^()]*)\)$")
_BINARY = re.compile(r"^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in | notin | exists | !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]
    text: str

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """True when every requirement holds for ``labels`` (an object's labels)."""
        found = labels or {}
        return all(r.matches(found) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Requirements separated by commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _key(key: str, text: str) -> str:
    if not _KEY.fullmatch(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise ValueError(f"label selector {text!r}: {key!r} is not a label key")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.fullmatch(value) or len(value) > 63:
        raise ValueError(f"label selector {text!r}: {value!r} is not a label value")
    return value


def parse_selector(text: str) -> LabelSelector | None:
    """The selector ``text`` writes (None when blank); a ValueError naming what is wrong."""
    if not text.strip():
        return None
    requirements = []
    for part in _split(text):
        if not part:
            raise ValueError(f"label selector {text!r}: an empty requirement")
        found = _SET.match(part)
        if found:
            key, op, values = found.groups()
            items = frozenset(_value(v.strip(), text) for v in values.split(","))
            requirements.append(Requirement(_key(key, text), op, items))
            continue
        found = _BINARY.match(part)
        if found:
            key, op, value = found.groups()
            values = frozenset({_value(value, text)})
            requirements.append(
                Requirement(_key(key, text), "notin" if op == "!=" else "in", values)
            )
            continue
        if part.startswith("!"):
            requirements.append(Requirement(_key(part[1:].strip(), text), "!exists"))
            continue
        requirements.append(Requirement(_key(part, text), "exists"))
    return LabelSelector(tuple(requirements), text.strip())
