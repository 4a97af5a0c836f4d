"""Typed access to a spec mapping that records every problem, naming its field.

The parser (:mod:`.parse`) reads the whole spec through one :class:`FieldReader` and
raises one :class:`SpecError` listing all the problems at the end, so a user fixes a
spec in one round instead of one error at a time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelmonitor.core.action_names import NONE
from modelmonitor.core.spec.model import ACTIONS

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class SpecError(ValueError):
    """One or more problems in a spec; ``problems`` maps field paths to messages."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in self.problems))


def parse_duration(text: str) -> float:
    """Parse a duration like ``90s``, ``1h30m``, ``500ms`` or ``28d`` into seconds."""
    value = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 5m, 1h30m, 28d)")
    return total


def _seconds_text(seconds: float, unit: float) -> str:
    if unit < 1:
        return f"{seconds * 1000:g}ms"
    for name, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{name}"
    return f"{seconds:g}s"


class FieldReader:
    """Typed access to a nested mapping that records problems instead of raising early.

    ``deprecations`` lists the deprecated fields a spec still uses, with what replaces
    them (see :meth:`duration_or_legacy`).
    """

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.deprecations: list[tuple[str, str]] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def obj(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(f"{path}.{key}", "must be an object")
            return None
        return value

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: str | None = None,
        required: bool = False,
        choices: Sequence[str] | None = None,
    ) -> str | None:
        value = data.get(key, default)
        if value is None:
            if required:
                self.problem(f"{path}.{key}", "is required")
            return None
        if not isinstance(value, str) or (required and not value):
            self.problem(f"{path}.{key}", "must be a non-empty string")
            return default
        if choices is not None and value not in choices:
            self.problem(
                f"{path}.{key}",
                f"unsupported value {value!r}; expected one of {', '.join(choices)}",
            )
            return default
        return value

    def name(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        rule: Callable[[object], str | None],
    ) -> str | None:
        """A required object name or data key held to ``rule`` (see :mod:`core.names`).

        An invalid name is recorded and returned as None: it must never reach a path.
        """
        value = self.string(data, key, path, required=True)
        if value is None:
            return None
        problem = rule(value)
        if problem is not None:
            self.problem(f"{path}.{key}", problem)
            return None
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: float | None,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float | None:
        value = data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{path}.{key}", "must be a number")
            return default
        number = float(value)
        if low is not None and (number < low or (low_open and number == low)):
            self.problem(f"{path}.{key}", f"must be {'>' if low_open else '>='} {low:g}")
        if high is not None and (number > high or (high_open and number == high)):
            self.problem(f"{path}.{key}", f"must be {'<' if high_open else '<='} {high:g}")
        return number

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: int,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{path}.{key}", "must be an integer")
            return default
        if low is not None and value < low:
            self.problem(f"{path}.{key}", f"must be >= {low}")
        if high is not None and value > high:
            self.problem(f"{path}.{key}", f"must be <= {high}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str, *, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", "must be true or false")
            return default
        return value

    def duration(
        self, data: Mapping[str, Any], key: str, path: str, *, default: float
    ) -> float | None:
        """Seconds; ``default`` when absent, None (and a problem) when not a duration."""
        text = data.get(key)
        if text is None:
            return default
        if not isinstance(text, str):
            self.problem(f"{path}.{key}", "must be a duration string such as 60s or 5m")
            return None
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.problem(f"{path}.{key}", str(exc))
            return None

    def duration_or_legacy(
        self,
        data: Mapping[str, Any],
        key: str,
        legacy: str,
        path: str,
        *,
        unit: float,
        default: float,
        legacy_default: float | None,
        low: float,
        high: float,
        low_open: bool = False,
        integer: bool = False,
    ) -> float:
        """Seconds from ``key`` (a duration string) or its deprecated numeric ``legacy``.

        ``legacy`` counts ``unit`` seconds (1 for ``cooldownSeconds``, 0.001 for
        ``thresholdMs``). Setting both is a problem, except when ``legacy`` holds
        ``legacy_default``: older CRDs stored that default in every object, and an
        object updated to the new field keeps it unless removed; the new field wins.
        A legacy value other than that default is listed in :attr:`deprecations`.
        The result is held to ``low``..``high`` seconds; ``default`` when neither is set.
        """
        new_path, old_path = f"{path}.{key}", f"{path}.{legacy}"
        old = data.get(legacy)
        if data.get(key) is not None:
            seconds = self.duration(data, key, path, default=default)
            if old is not None and old != legacy_default:
                self.problem(
                    new_path, f"set {key} or the deprecated {legacy}, not both (remove {legacy})"
                )
            where = new_path
        elif old is not None:
            number = (
                self.integer(data, legacy, path, default=0)
                if integer
                else self.number(data, legacy, path, default=None)
            )
            seconds = None if number is None else number * unit
            if old != legacy_default:
                self.deprecations.append((old_path, f"deprecated: use {key} (a duration)"))
            where = old_path
        else:
            return default
        if seconds is None:
            return default
        too_low = seconds < low or (low_open and seconds == low)
        if too_low or seconds > high:
            low_text = "more than" if low_open else "at least"
            text = f"must be {low_text} {_seconds_text(low, unit)}"
            if math.isfinite(high):
                text += f" and at most {_seconds_text(high, unit)}"
            self.problem(where, text)
            return default
        return seconds

    def action_list(self, data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{path}.{key}", "must be a list of action names")
            return ()
        for item in value:
            if item not in ACTIONS:
                self.problem(
                    f"{path}.{key}", f"unsupported action {item!r}; expected one of {ACTIONS}"
                )
        if NONE in value and len(value) > 1:
            self.problem(f"{path}.{key}", "'none' cannot be combined with other actions")
        if len(set(value)) != len(value):
            self.problem(f"{path}.{key}", "lists an action twice")
        return tuple(a for a in value if a in ACTIONS and a != NONE)
