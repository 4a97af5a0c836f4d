"""The payload store's byte budget: many monitors flooding never take it past its bytes.

Each window holds at most ``max_bytes / len(store)``; over it, it gives up its oldest
unpaired halves and rows (counted as ``over_budget``). The attacks: wide rows, ever-new
long labels, unpaired halves that never pair, and a new monitor arriving while the
others are full.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from modelmonitor.core.spec import MonitorSpec, PayloadLogSpec, ReferenceSpec, TargetSpec
from modelmonitor.sources.payload.store import PayloadStore
from tests.unit.sources.payload_events import T0, v1_pair
from tests.unit.sources.payload_events import event as make_event

pytestmark = pytest.mark.timeout(120)

TOKEN = "t" * 43
MIB = 1024 * 1024


def spec(max_samples: int = 200_000) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name="iris", kind="InferenceService"),
        reference=ReferenceSpec(source="inline"),
        payload_log=PayloadLogSpec(window_seconds=3600, min_samples=1, max_samples=max_samples),
    )


def test_many_monitors_flooding_stay_within_the_budget() -> None:
    budget = 4 * MIB
    store = PayloadStore(max_bytes=budget)
    monitors = [f"m{i}" for i in range(12)]
    for name in monitors:
        store.register("ml", name, spec(), TOKEN)
    rng = np.random.default_rng(1)
    wide = [[float(x) for x in rng.normal(size=64)] for _ in range(200)]  # 200 rows x 64
    labels = [[f"label-{rng.integers(1 << 40)}-{'x' * 200}" for _ in range(8)] for _ in range(50)]
    peak = 0
    for round_ in range(12):
        for name in monitors:
            window = store.window("ml", name)
            assert window is not None
            now = T0 + round_
            for event in v1_pair(f"{name}-w{round_}", wide, [0] * len(wide)):
                window.add(event, now)
            for event in v1_pair(f"{name}-l{round_}", labels, ["a"] * len(labels)):
                window.add(event, now)
            # unpaired requests that never pair
            window.add(make_event(f"{name}-u{round_}", "request", {"instances": wide}), now)
            peak = max(peak, store.nbytes())
            assert store.nbytes() <= budget
        for key, held in store.window_bytes().items():
            assert held <= budget // len(monitors), key
    counters = store.counters()
    assert all(c.over_budget > 0 for c in counters.values())
    assert peak > budget * 0.5  # the windows do fill their shares


def test_a_new_monitor_takes_its_share_from_full_windows_at_once() -> None:
    budget = 2 * MIB
    store = PayloadStore(max_bytes=budget)
    first = store.register("ml", "first", spec(), TOKEN)
    assert first is not None
    rows = [[float(i), float(i)] for i in range(1000)]
    for i in range(200):
        for event in v1_pair(f"e{i}", rows, [0] * len(rows)):
            first.add(event, T0)
    assert first.nbytes() > budget * 0.6
    store.register("ml", "second", spec(), TOKEN)
    assert first.nbytes() <= budget // 2
    assert store.nbytes() <= budget
    data = first.snapshot(T0, [], min_samples=1)
    assert data is not None  # the newest rows stayed
    store.forget("ml", "second")
    assert first.byte_limit == budget


def test_one_event_larger_than_the_share_is_not_kept() -> None:
    store = PayloadStore(max_bytes=1 * MIB)
    window = store.register("ml", "m", spec(), TOKEN)
    assert window is not None
    for i in range(30):
        store.register("ml", f"other{i}", spec(1000), TOKEN)
    share = 1 * MIB // 31
    huge = [["y" * 1000] * 10 for _ in range(100)]  # ~1 MB of text, unpaired
    window.add(make_event("big", "request", {"instances": huge}), T0)
    assert window.nbytes() <= share
    assert window.status(T0).pending == 0
    assert window.status(T0).counters.over_budget == 1


def test_the_byte_count_follows_what_python_allocates() -> None:
    """The estimate the budget is enforced on, against tracemalloc's count of the
    window's real allocations (numpy reports its buffers to tracemalloc)."""
    store = PayloadStore(max_bytes=64 * MIB)
    window = store.register("ml", "m", spec(), TOKEN)
    assert window is not None
    rows = [[float(i + j) for j in range(20)] for i in range(500)]
    events = [e for i in range(100) for e in v1_pair(f"e{i}", rows, [i % 3] * len(rows))]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for event in events:
        window.add(event, T0)
    real = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    estimate = window.nbytes()
    assert len(window) == 50_000
    assert 0.5 * real <= estimate <= 2 * real, (estimate, real)
