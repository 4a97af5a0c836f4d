"""The partition step on a Dask cluster (adapters/dask_engine.py) and ``mode: dask``.

The cluster is real: a ``distributed`` scheduler and two workers in this process
(threads, one each; the e2e tests use worker processes). The engine's merged profile is
held to single-pod streaming of the same files: exact parts exactly, sketches within
their stated rank error, the verdict equal. Attacks: a scheduler named at a blocked
address, a malformed address, a missing extra, a failing cluster.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.adapters import dask_engine
from modelmonitor.adapters.files import DataError
from modelmonitor.adapters.files.partitions import iter_partitions
from modelmonitor.adapters.outbound import Outbound, OutboundRefused
from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.outbound import OutboundPolicy
from modelmonitor.core.report import Report
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.partitions import ProfileSchema, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.edge.job_command import dask_profiler
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.engine.validation import evaluate
from modelmonitor.sources.base import Clients
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.loopback import LOOPBACK_ALLOWED

distributed = pytest.importorskip("distributed")

FEATURES = (Feature("x", "numerical"), Feature("k", "categorical"))
NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
REFERENCE = [{"x": float(i % 50) / 10, "k": "abc"[i % 3]} for i in range(300)]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def write_window(
    folder: Path, parts: int, rows: int, *, shift: float = 0.0, labels: int = 3
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for i in range(parts):
        x = rng.normal(shift, 1.0, rows)
        x[rng.random(rows) < 0.01] = np.nan
        k = rng.integers(0, labels, rows).astype(str)
        pq.write_table(pa.table({"x": x, "k": k}), folder / f"part-{i:03d}.parquet")
    return sorted(folder.glob("*.parquet"))


def streamed(paths: Sequence[Path], schema: ProfileSchema) -> ReferenceProfile:
    return profile_stream(iter_partitions(paths, schema.features), schema)


def assert_same_exact_parts(a: ReferenceProfile, b: ReferenceProfile) -> None:
    assert a.n_rows == b.n_rows
    xa, xb = a["x"], b["x"]
    assert isinstance(xa, NumericalProfile)
    assert isinstance(xb, NumericalProfile)
    assert (xa.n, xa.n_missing, xa.n_pos_inf, xa.n_neg_inf) == (
        xb.n,
        xb.n_missing,
        xb.n_pos_inf,
        xb.n_neg_inf,
    )
    assert (xa.min, xa.max) == (xb.min, xb.max)
    assert math.isclose(xa.mean, xb.mean, rel_tol=1e-12)
    assert math.isclose(xa.m2, xb.m2, rel_tol=1e-10)
    ka, kb = a["k"], b["k"]
    assert isinstance(ka, CategoricalProfile)
    assert isinstance(kb, CategoricalProfile)
    assert ka.n_missing == kb.n_missing


def test_the_engine_merges_to_the_streamed_profile(client: Any, tmp_path: Path) -> None:
    paths = write_window(tmp_path, 12, 2000)
    schema = ProfileSchema(FEATURES)
    run = dask_engine.profile_on_dask(client, paths, schema)
    local = streamed(paths, schema)
    assert (run.files, run.workers) == (12, 2)
    assert_same_exact_parts(run.profile, local)
    ka, kb = run.profile["k"], local["k"]
    assert isinstance(ka, CategoricalProfile)
    assert isinstance(kb, CategoricalProfile)
    assert dict(ka.counts) == dict(kb.counts)  # under the cap: exact counts
    # every CDF value of the two sketches within the stated rank error of the true one
    values = np.concatenate([pq.read_table(p)["x"].to_numpy() for p in paths])
    finite = np.sort(values[np.isfinite(values)])
    grid = np.linspace(-3, 3, 61)
    truth = np.searchsorted(finite, grid, side="right") / finite.size
    for profile in (run.profile, local):
        x = profile["x"]
        assert isinstance(x, NumericalProfile)
        assert np.max(np.abs(x.cdf(grid) - truth)) <= schema.rank_epsilon


def test_a_small_window_stays_exact_through_the_engine(client: Any, tmp_path: Path) -> None:
    paths = write_window(tmp_path, 4, 200)  # 800 values: the exact sample, not a sketch
    schema = ProfileSchema(FEATURES)
    a = dask_engine.profile_on_dask(client, paths, schema).profile["x"]
    b = streamed(paths, schema)["x"]
    assert isinstance(a, NumericalProfile)
    assert isinstance(b, NumericalProfile)
    assert a.values is not None
    assert b.values is not None
    np.testing.assert_array_equal(a.values, b.values)


def test_categories_past_the_cap_travel_as_a_sketch(client: Any, tmp_path: Path) -> None:
    paths = write_window(tmp_path, 6, 1000, labels=40)
    schema = ProfileSchema(FEATURES, category_cap=10)
    a = dask_engine.profile_on_dask(client, paths, schema).profile["k"]
    b = streamed(paths, schema)["k"]
    assert isinstance(a, CategoricalProfile)
    assert isinstance(b, CategoricalProfile)
    assert a.sketched
    assert b.sketched
    assert (a.n, a.n_missing) == (b.n, b.n_missing)  # exact, sketched or not
    # each listed count within the sketch's stated error of the exact count
    values = np.concatenate([pq.read_table(p)["k"].to_numpy(zero_copy_only=False) for p in paths])
    labels, counts = np.unique(values, return_counts=True)
    exact = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    listed = {k: v for k, v in a.estimated_counts().items() if k in exact}
    assert listed
    for label, count in listed.items():
        assert abs(count - exact[label]) <= a.count_error, label


def test_a_failing_file_fails_the_step_with_its_own_error(client: Any, tmp_path: Path) -> None:
    paths = write_window(tmp_path, 3, 400)
    with pytest.raises(DataError, match="max rows"):
        dask_engine.profile_on_dask(
            client, paths, ProfileSchema(FEATURES), ReadLimits(max_rows=300)
        )


def test_window_profiles_round_trip_their_category_cap() -> None:
    profile = ProfileSchema(FEATURES, category_cap=7).empty()
    again = ReferenceProfile.from_json(profile.to_json())
    assert again.category_cap == 7
    # saved reference profiles (no cap) keep their JSON unchanged
    assert "category_cap" not in ProfileSchema(FEATURES, category_cap=None).empty().to_dict()


# --- the scheduler's address ----------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:8786",
        "http://127.0.0.1:8786",
        "tcp://",
        "tcp://user:pw@host:8786",
        "tcp://host:8786/path",
        "tcp://host:8786?x=1",
        "tcp://host:99999",
    ],
)
def test_malformed_scheduler_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"tcp://host:port"):
        dask_engine.parse_scheduler(address)


def test_the_scheduler_address_goes_through_the_fence() -> None:
    strict = Outbound(OutboundPolicy())  # loopback, link-local, metadata: refused
    with pytest.raises(dask_engine.EngineError, match=r"127\.0\.0\.1"):
        dask_engine.fenced_address("tcp://127.0.0.1:8786", strict.check)
    with pytest.raises(dask_engine.EngineError):
        dask_engine.fenced_address("tcp://169.254.169.254:80", strict.check)
    with pytest.raises(dask_engine.EngineError):  # a name resolving to loopback
        dask_engine.fenced_address("tcp://localhost:8786", strict.check)
    # allowed: connected to by the IP that was checked, not the name again
    assert dask_engine.fenced_address("tcp://localhost:8786", LOOPBACK_ALLOWED.check) in (
        "tcp://127.0.0.1:8786",
        "tcp://[::1]:8786",
    )


def test_the_run_pods_profiler_refuses_a_blocked_scheduler_before_connecting(
    tmp_path: Path,
) -> None:
    profiler = dask_profiler(Outbound(OutboundPolicy()))
    assert profiler is not None
    paths = write_window(tmp_path, 1, 10)
    with pytest.raises(dask_engine.EngineError, match=r"refused|blocked|loopback"):
        profiler("tcp://127.0.0.1:1", paths, ProfileSchema(FEATURES), ReadLimits())
    assert isinstance(OutboundRefused("a", "b"), OSError)


# --- spec.schedule.mode: dask ---------------------------------------------------------------


def spec(**schedule: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "model"},
            "schedule": {"mode": "dask", "dask": {"scheduler": "tcp://dask.data:8786"}} | schedule,
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}, {"name": "k", "type": "categorical"}],
            "data": {"partitions": {"claimName": "batch-data", "path": "window"}},
            "drift": {"minSamples": 10},
        }
    )


def test_mode_dask_parses_and_runs_in_a_job() -> None:
    s = spec()
    assert s.schedule.mode == "dask"
    assert s.schedule.dask is not None
    assert s.schedule.dask.scheduler == "tcp://dask.data:8786"
    assert s.schedule.in_job


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"dask": None}, r"spec.schedule.dask: is set exactly when"),
        ({"mode": "job"}, r"spec.schedule.dask: is set exactly when"),
        ({"dask": {"scheduler": "http://x:1"}}, r"scheduler: must be tcp://host:port"),
        ({"dask": {"scheduler": "tcp://x"}}, r"scheduler: must be tcp://host:port"),
        ({"dask": {"scheduler": "tcp://Bad_Host:1"}}, r"scheduler: must be tcp://host:port"),
        ({"dask": {}}, r"spec.schedule.dask.scheduler"),
    ],
)
def test_mode_dask_is_validated(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(**schedule)


def test_mode_dask_needs_partitions() -> None:
    with pytest.raises(SpecError, match=r"'dask' needs spec.data.partitions"):
        parse_spec(
            {
                "target": {"name": "model"},
                "schedule": {"mode": "dask", "dask": {"scheduler": "tcp://d:8786"}},
                "reference": {"inline": REFERENCE},
                "data": {"probe": {}},
            }
        )


class Objects:
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return {"spec": {}} if kind == "Deployment" else None

    def list(self, kind: str, namespace: str, labels: Any) -> list[dict[str, Any]]:
        return []


def test_without_the_extra_mode_dask_is_invalid_with_the_reason() -> None:
    body = {
        "metadata": {"name": "m", "namespace": "ml", "generation": 1},
        "spec": {
            "target": {"name": "model"},
            "schedule": {"mode": "dask", "dask": {"scheduler": "tcp://d:8786"}},
            "reference": {"inline": REFERENCE},
            "data": {"partitions": {"claimName": "c", "path": "w"}},
        },
    }
    result = evaluate(body, Objects(), now=NOW, dask_installed=False)
    assert result.status_patch["phase"] == "Invalid"
    ready = result.status_patch["conditions"][0]
    assert ready["reason"] == "EngineNotInstalled"
    assert "modelmonitor[dask]" in ready["message"]
    assert evaluate(body, Objects(), now=NOW, dask_installed=True).valid


def run(monitor: MonitorSpec, root: Path, dask: Any, own_scheduler: str | None = None) -> Report:
    objects = Objects()
    clients = Clients(
        references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
        lookup=objects,
        clock=lambda: NOW,
        outbound=LOOPBACK_ALLOWED,
        window_root=str(root),
        dask=dask,
        dask_scheduler=own_scheduler,
    )
    return asyncio.run(InlineRunner(clients, mode="job").run("ml", "batch", monitor, {}))


def test_a_dask_run_reports_what_a_streamed_run_reports(client: Any, tmp_path: Path) -> None:
    write_window(tmp_path / "window", 10, 600, shift=2.0)

    def on_cluster(
        scheduler: str, paths: Sequence[Path], schema: ProfileSchema, limits: ReadLimits
    ) -> tuple[ReferenceProfile, int]:
        assert scheduler == "tcp://dask.data:8786"
        done = dask_engine.profile_on_dask(client, paths, schema, limits)
        return done.profile, done.workers

    on_dask = run(spec(), tmp_path, on_cluster)
    streamed_run = run(
        parse_spec(
            {
                "target": {"name": "model"},
                "schedule": {"mode": "job"},
                "reference": {"inline": REFERENCE},
                "features": [
                    {"name": "x", "type": "numerical"},
                    {"name": "k", "type": "categorical"},
                ],
                "data": {"partitions": {"claimName": "batch-data", "path": "window"}},
                "drift": {"minSamples": 10},
            }
        ),
        tmp_path,
        None,
    )
    assert on_dask.problems == ()
    assert on_dask.details["partitions"] == {
        "files": 10,
        "rows": 6000,
        "engine": "dask",
        "workers": 2,
    }
    assert on_dask.drift.status == streamed_run.drift.status
    assert on_dask.drift.drifted == streamed_run.drift.drifted
    a = {f.name: (f.drifted, f.statistic) for f in on_dask.drift.features}
    b = {f.name: (f.drifted, f.statistic) for f in streamed_run.drift.features}
    assert a.keys() == b.keys()
    for name, (drifted, statistic) in a.items():
        assert drifted == b[name][0]
        assert statistic == pytest.approx(b[name][1], abs=2 * ProfileSchema(FEATURES).rank_epsilon)
    assert a["x"][0]  # shifted by 2


def test_mode_dask_without_the_engine_in_the_pod_says_so(tmp_path: Path) -> None:
    write_window(tmp_path / "window", 2, 100)
    report = run(spec(), tmp_path, None)
    (problem,) = report.problems
    assert problem.reason == "EngineNotInstalled"
    assert report.drift.status == "unavailable"


def test_a_failing_cluster_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write_window(tmp_path / "window", 2, 100)

    def broken(*_: Any) -> tuple[ReferenceProfile, int]:
        raise dask_engine.EngineError("cannot reach the Dask scheduler tcp://dask.data:8786")

    report = run(spec(), tmp_path, broken)
    (problem,) = report.problems
    assert problem.reason == "EngineFailed"
    assert "cannot reach the Dask scheduler" in problem.message


def test_a_runs_own_cluster_is_profiled_on_at_the_address_the_pod_checked(
    tmp_path: Path,
) -> None:
    write_window(tmp_path / "window", 2, 100)
    asked: list[str] = []

    def broken(scheduler: str, *_: Any) -> tuple[ReferenceProfile, int]:
        asked.append(scheduler)
        raise dask_engine.EngineError("stop here")

    own = "tcp://batch-dask-1-scheduler.ml.svc.cluster.local:8786"
    report = run(spec(dask={"cluster": {}}), tmp_path, broken, own_scheduler=own)
    assert asked == [own]
    assert [p.reason for p in report.problems] == ["EngineFailed"]
    # a pod that was not told its cluster's address profiles nowhere
    report = run(spec(dask={"cluster": {}}), tmp_path, broken)
    assert [p.reason for p in report.problems] == ["EngineUnavailable"]
    assert asked == [own]


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--engine", "dask"], "--engine dask needs --scheduler"),
        (["--scheduler", "tcp://h:8786"], "--scheduler is the address of --engine dask"),
        (["--engine", "dask", "--scheduler", "http://h:1"], "tcp://host:port"),
        (["--engine", "dask-local", "--workers", "0"], "--workers must lie in"),
    ],
)
def test_engine_arguments_are_checked_before_any_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    from modelmonitor.edge.cli import main

    paths = write_window(tmp_path / "window", 2, 50)
    pq.write_table(pq.read_table(paths[0]), tmp_path / "ref.parquet")
    args = ["check", "--reference", str(tmp_path / "ref.parquet")]
    rc = main([*args, "--current", str(tmp_path / "window"), *extra])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_an_engine_on_one_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelmonitor.edge.cli import main

    paths = write_window(tmp_path / "window", 1, 50)
    rc = main(
        [
            "check",
            "--reference",
            str(paths[0]),
            "--current",
            str(paths[0]),
            "--engine",
            "dask-local",
        ]
    )
    assert rc == 2
    assert "profiles the files of a partitioned --current" in capsys.readouterr().err


def test_without_the_extra_the_command_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelmonitor.edge.cli import main

    monkeypatch.setattr(dask_engine, "available", lambda: False)
    paths = write_window(tmp_path / "window", 2, 50)
    args = ["check", "--reference", str(paths[0]), "--current", str(tmp_path / "window")]
    assert main([*args, "--engine", "dask-local"]) == 2
    assert "pip install 'modelmonitor[dask]'" in capsys.readouterr().err
    assert dask_profiler(LOOPBACK_ALLOWED) is None  # the run pod: EngineNotInstalled
