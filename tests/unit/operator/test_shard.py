"""Sharding monitors across operator deployments by label selector (SHARD_LABEL_SELECTOR)."""

from __future__ import annotations

import types

import kopf
import pytest

from modelmonitor.core.shard import parse_selector
from modelmonitor.edge import handlers
from modelmonitor.edge.config import load_config


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("shard=a", {"shard": "a"}, True),
        ("shard=a", {"shard": "b"}, False),
        ("shard=a", {}, False),
        ("shard==a", {"shard": "a"}, True),
        ("shard!=a", {}, True),
        ("shard!=a", {"shard": "a"}, False),
        ("shard in (a, b)", {"shard": "b"}, True),
        ("shard in (a,b)", {"shard": "c"}, False),
        ("shard notin (a,b)", {"shard": "c"}, True),
        ("shard notin (a,b)", {}, True),
        ("!modelmonitor.io/shard", {}, True),
        ("!modelmonitor.io/shard", {"modelmonitor.io/shard": "a"}, False),
        ("modelmonitor.io/shard", {"modelmonitor.io/shard": ""}, True),
        ("team=ml,shard in (a,b)", {"team": "ml", "shard": "a"}, True),
        ("team=ml,shard in (a,b)", {"team": "ops", "shard": "a"}, False),
    ],
)
def test_selectors_match_like_kubectl(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    parsed = parse_selector(selector)
    assert parsed is not None
    assert parsed.matches(labels) is expected


@pytest.mark.parametrize("bad", ["a=b=c", "shard in (a", "=a", "a,,b", "Bad Key=x", "k=va lue"])
def test_a_malformed_selector_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        parse_selector(bad)


def test_blank_means_every_monitor() -> None:
    assert parse_selector("  ") is None
    cfg = load_config(env={})
    assert cfg.shard is None
    assert cfg.annotation_prefix == "modelmonitor.io"
    assert cfg.finalizer == handlers.FINALIZER == "modelmonitor.io/run-loop"


def test_a_shard_needs_a_lease_name_of_its_own_and_keeps_its_own_annotations() -> None:
    with pytest.raises(ValueError, match="LEASE_NAME"):
        load_config(env={"SHARD_LABEL_SELECTOR": "shard=a"})
    with pytest.raises(ValueError, match="DNS-1123 label"):
        load_config(env={"SHARD_LABEL_SELECTOR": "shard=a", "LEASE_NAME": "Shard_A"})
    with pytest.raises(ValueError, match="label selector"):
        load_config(env={"SHARD_LABEL_SELECTOR": "shard in (a", "LEASE_NAME": "mm-a"})
    cfg = load_config(env={"SHARD_LABEL_SELECTOR": "shard=a", "LEASE_NAME": "mm-a"})
    assert cfg.shard is not None
    assert cfg.shard.text == "shard=a"
    assert cfg.annotation_prefix == "mm-a.modelmonitor.io"
    assert cfg.finalizer == "mm-a.modelmonitor.io/run-loop"


def test_every_monitor_handler_is_filtered_by_the_shard() -> None:
    cfg = load_config(env={"SHARD_LABEL_SELECTOR": "shard=a", "LEASE_NAME": "mm-a"})
    memo = types.SimpleNamespace(context=handlers.OperatorContext.__new__(handlers.OperatorContext))
    memo.context.config = cfg
    assert handlers.in_shard({"shard": "a"}, memo)
    assert not handlers.in_shard({"shard": "b"}, memo)
    assert not handlers.in_shard({}, memo)
    unsharded = types.SimpleNamespace(context=None)
    assert handlers.in_shard({}, unsharded)  # no operator context: no selector

    handlers.register_recheck(5.0)
    registry = kopf.get_default_registry()
    monitor_handlers = [
        *registry._changing.get_all_handlers(),  # create, resume, update, delete, timers
        *registry._spawning.get_all_handlers(),  # the run loop's daemon
    ]
    ids = {h.id for h in monitor_handlers}
    assert {"on_create", "on_resume", "on_update", "on_delete", "monitoring_runs"} <= ids, ids
    for h in monitor_handlers:
        if h.id == "recheck_references":
            continue  # its own filter asks in_shard first (below)
        assert h.when is handlers.in_shard, h.id
    recheck = next(h for h in monitor_handlers if h.id == "recheck_references")
    assert recheck.when is not None
    status = {"conditions": [{"type": "Ready", "status": "False", "reason": "TargetNotFound"}]}
    assert not recheck.when(status=status, labels={"shard": "b"}, memo=memo)
