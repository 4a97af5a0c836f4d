"""The registry that data sources and reference loaders are kept in."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modelmonitor.sources.registry import Registry, UnknownSourceError


@dataclass(frozen=True)
class Entry:
    key: str


def test_entries_keep_their_order_and_are_found_by_key() -> None:
    registry = Registry("thing", [Entry("b"), Entry("a"), Entry("c")])
    assert registry.keys() == ("b", "a", "c")
    assert [e.key for e in registry] == ["b", "a", "c"]
    assert registry["a"] == Entry("a")
    assert "c" in registry
    assert "d" not in registry
    assert len(registry) == 3


def test_an_unknown_key_is_an_error_naming_the_known_ones() -> None:
    registry = Registry("thing", [Entry("b"), Entry("a")])
    with pytest.raises(UnknownSourceError) as info:
        registry["z"]
    assert str(info.value) == "no thing 'z'; known: b, a"
    assert info.value.key == "z"
    with pytest.raises(UnknownSourceError, match="known: none"):
        Registry[Entry]("thing", [])["z"]


def test_two_entries_may_not_share_a_key() -> None:
    with pytest.raises(ValueError, match="two things have the key 'a'"):
        Registry("thing", [Entry("a"), Entry("a")])
