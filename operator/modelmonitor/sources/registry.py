"""A registry: the implementations of one kind, keyed by the spec's name for them.

The run's data sources are keyed by the spec's data type (``probe``, ``payloadLog``,
``prometheus``: :mod:`modelmonitor.sources.builtin`), the reference loaders by
``spec.reference``'s source (``configMap``, ``url``, ``pvc``, ``inline``:
:mod:`modelmonitor.sources.reference.loaders`). Entries keep the order they were given
in, which is the order a run asks them. A key that no entry has is an
:class:`UnknownSourceError`, never a fallback to another entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class Keyed(Protocol):
    @property
    def key(self) -> str:
        """The spec's name for this entry."""
        ...


K = TypeVar("K", bound=Keyed)


class UnknownSourceError(LookupError):
    """No entry has this key (a spec value that no implementation serves)."""

    def __init__(self, what: str, key: str, known: Iterable[str]) -> None:
        super().__init__(f"no {what} {key!r}; known: {', '.join(known) or 'none'}")
        self.key = key


class Registry(Generic[K]):
    """Entries of one kind by key, in the order given; two entries may not share a key."""

    def __init__(self, what: str, entries: Iterable[K]) -> None:
        self.what = what
        self._entries: dict[str, K] = {}
        for entry in entries:
            if entry.key in self._entries:
                raise ValueError(f"two {what}s have the key {entry.key!r}")
            self._entries[entry.key] = entry

    def __getitem__(self, key: str) -> K:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownSourceError(self.what, key, self._entries) from None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> tuple[str, ...]:
        return tuple(self._entries)
