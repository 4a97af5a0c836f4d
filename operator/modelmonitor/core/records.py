"""Frozen records read from status JSON and written back exactly as they were read.

Status outlives the operator that wrote it: after an upgrade the new operator reads what
the old one wrote, and must write back only what it changes. A record is a frozen
dataclass deriving from :class:`Record` whose fields are declared with :func:`key` (the
JSON name, and how to read and write the value). ``Rec.from_dict(d).to_dict() == d`` for
every JSON object ``d``:

* a key the record does not know is kept as written (``extra``);
* so is a known key whose value this version cannot read (a type it never writes): its
  field holds the default meanwhile;
* a known key that ``d`` lacks stays absent (``absent``) as long as its field holds the
  default;
* a field whose default is None is left out while it is None, unless it is declared
  ``null=True`` (a key that is always written, ``null`` when empty).

A record built in code writes every field that is not None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Self, TypeVar

_KEY = "modelmonitor.io/json-key"
R = TypeVar("R", bound="Record")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Key:
    name: str
    read: Callable[[Any], Any]  # raises TypeError or ValueError when it cannot
    write: Callable[[Any], Any]
    null: bool


def key(
    name: str,
    read: Callable[[Any], Any],
    *,
    default: Any = None,
    factory: Callable[[], Any] | None = None,
    write: Callable[[Any], Any] = _same,
    null: bool = False,
) -> Any:
    """A record field stored under the JSON key ``name``."""
    metadata = {_KEY: _Key(name, read, write, null)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _keys(cls: type[Record]) -> tuple[tuple[Field[Any], _Key], ...]:
    return tuple((f, f.metadata[_KEY]) for f in fields(cls) if _KEY in f.metadata)


def _default(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


@dataclass(frozen=True, kw_only=True)
class Record:
    """What a record read and cannot, or need not, represent: written back unchanged."""

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    absent: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        absent: set[str] = set()
        for f, k in _keys(cls):
            if k.name not in data:
                absent.add(k.name)
                continue
            if data[k.name] is None and k.null:
                values[f.name] = None
                continue
            try:
                values[f.name] = k.read(data[k.name])
            except (TypeError, ValueError):
                extra[k.name] = data[k.name]
                absent.add(k.name)
        known = {k.name for _, k in _keys(cls)}
        extra.update((name, value) for name, value in data.items() if name not in known)
        return cls(**values, extra=extra, absent=frozenset(absent))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, k in _keys(type(self)):
            value = getattr(self, f.name)
            if value is None and not k.null:
                continue
            if k.name in self.absent and value == _default(f):
                continue
            out[k.name] = None if value is None else k.write(value)
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out


# -- readers: the value as this version writes it, or TypeError/ValueError ---------------


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


def _items(value: Any) -> Sequence[Any]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError("not an object")
    return value


def texts(value: Any) -> tuple[str, ...]:
    return tuple(text(v) for v in _items(value))


def text_map(value: Any) -> dict[str, str]:
    return {k: text(v) for k, v in _mapping(value).items()}


def obj(value: Any) -> dict[str, Any]:
    """A JSON object this version passes on without looking inside."""
    return dict(_mapping(value))


def objs(value: Any) -> tuple[dict[str, Any], ...]:
    return tuple(obj(v) for v in _items(value))


def record(cls: type[R]) -> Callable[[Any], R]:
    return lambda value: cls.from_dict(_mapping(value))


def records(cls: type[R]) -> Callable[[Any], tuple[R, ...]]:
    return lambda value: tuple(cls.from_dict(_mapping(v)) for v in _items(value))


# -- writers -------------------------------------------------------------------------


def as_list(values: Sequence[Any]) -> list[Any]:
    return list(values)


def as_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


def as_dicts(values: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(v) for v in values]


def record_dict(value: Record) -> dict[str, Any]:
    return value.to_dict()


def record_dicts(values: Sequence[Record]) -> list[dict[str, Any]]:
    return [v.to_dict() for v in values]
