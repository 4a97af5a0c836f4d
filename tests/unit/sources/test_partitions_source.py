"""``spec.data.partitions``: job mode reads a partitioned window from a volume, streaming.

The run pod's view is a folder (the claim's mount); the files are real Parquet and CSV
partitions, the run is the real runner. Attacks: a path that climbs out of the claim, a
symbolic link on the volume leading to the pod's own files, a run outside job mode.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelmonitor.core.jobs import WINDOW_MOUNT, JobSettings, build_job
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.report import Report
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.edge.cli import build_parser
from modelmonitor.engine.runner import InlineRunner
from modelmonitor.sources.base import Clients
from modelmonitor.sources.reference import ReferenceCache
from tests.unit.loopback import LOOPBACK_ALLOWED

NOW = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
REFERENCE = [{"x": float(i % 50) / 10, "k": "abc"[i % 3]} for i in range(300)]
MONITOR = {"metadata": {"name": "batch", "namespace": "ml", "uid": "u-1"}}


class Objects:
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def list(self, kind: str, namespace: str, labels: Any) -> list[dict[str, Any]]:
        return []


def spec(path: str = "window", **extra: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "model"},
            "schedule": {"mode": "job"},
            "reference": {"inline": REFERENCE},
            "features": [{"name": "x", "type": "numerical"}, {"name": "k", "type": "categorical"}],
            "data": {"partitions": {"claimName": "batch-data", "path": path}},
            "drift": {"minSamples": 10},
        }
        | extra
    )


def run(monitor: MonitorSpec, root: Path | None, limits: ReadLimits | None = None) -> Report:
    objects = Objects()
    clients = Clients(
        references=ReferenceCache(objects, outbound=LOOPBACK_ALLOWED),
        lookup=objects,
        clock=lambda: NOW,
        outbound=LOOPBACK_ALLOWED,
        window_root=str(root) if root is not None else None,
        window_limits=limits or ReadLimits(),
    )
    return asyncio.run(InlineRunner(clients, mode="job").run("ml", "batch", monitor, {}))


def write_window(folder: Path, parts: int, rows: int, shift: float = 0.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(parts):
        x = rng.uniform(0, 4.9, rows) + shift
        k = rng.choice(["a", "b", "c"], rows)
        pq.write_table(pa.table({"x": x, "k": k}), folder / f"part-{i:03d}.parquet")


def test_a_partitioned_window_is_merged_and_checked(tmp_path: Path) -> None:
    write_window(tmp_path / "window", 12, 500, shift=2.0)
    report = run(spec(), tmp_path)
    assert report.problems == ()
    assert report.samples == 6000
    assert report.details["partitions"] == {"files": 12, "rows": 6000}
    assert report.drift.status == "ok"
    by_name = {f.name: f for f in report.drift.features}
    assert by_name["x"].drifted  # shifted by 2 on a range of 5
    assert not by_name["k"].drifted
    assert report.data_quality is not None
    assert report.data_quality["rows"] == 6000


def test_a_glob_names_the_partitions(tmp_path: Path) -> None:
    write_window(tmp_path / "day=1", 3, 200)
    write_window(tmp_path / "day=2", 3, 200)
    report = run(spec("/day=*/part-00[01].parquet"), tmp_path)
    assert report.problems == ()
    assert report.details["partitions"] == {"files": 4, "rows": 800}
    assert report.drift.status == "ok"


def test_outside_job_mode_there_is_no_mount_and_the_run_says_so(tmp_path: Path) -> None:
    report = run(spec(), None)
    assert [p.reason for p in report.problems] == ["PartitionsUnavailable"]
    assert report.drift.status == "unavailable"


def test_the_spec_needs_job_mode_and_a_path_inside_the_claim() -> None:
    with pytest.raises(SpecError, match=r"spec.data.partitions: needs spec.schedule.mode 'job'"):
        spec(schedule={"mode": "inline"})
    with pytest.raises(SpecError, match=r"spec.data.partitions.path"):
        spec("../../var/run/secrets/kubernetes.io/serviceaccount")


def test_a_link_out_of_the_volume_refuses_the_window(tmp_path: Path) -> None:
    outside = tmp_path / "pod"
    write_window(outside, 1, 100)
    volume = tmp_path / "volume"
    write_window(volume / "window", 2, 100)
    os.symlink(outside / "part-000.parquet", volume / "window" / "part-999.parquet")
    report = run(spec(), volume)
    (problem,) = report.problems
    assert problem.reason == "PartitionsUnreadable"
    assert "leads outside the volume" in problem.message
    assert report.samples == 0


def test_caps_apply_to_each_file(tmp_path: Path) -> None:
    write_window(tmp_path / "window", 4, 300)
    ok = run(spec(), tmp_path, ReadLimits(max_rows=300))
    assert ok.problems == ()
    assert ok.samples == 1200  # four times the cap, in four files
    write_window(tmp_path / "big", 1, 301)
    refused = run(spec("big"), tmp_path, ReadLimits(max_rows=300))
    (problem,) = refused.problems
    assert problem.reason == "PartitionsUnreadable"
    assert "big/part-000.parquet" in problem.message
    assert "max rows" in problem.message


def test_the_job_mounts_the_window_claim_read_only_and_says_where() -> None:
    monitor = spec()
    assert monitor.partitions is not None
    job = build_job(
        monitor=MONITOR,
        run_id="abc",
        settings=JobSettings(),
        resources=None,
        active_deadline_seconds=60,
        window_claim=monitor.partitions.claim_name,
    )
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"] == {"claimName": "batch-data", "readOnly": True}
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert mount == {"name": volume["name"], "mountPath": WINDOW_MOUNT, "readOnly": True}
    args = build_parser().parse_args(container["args"])
    assert args.window_root == WINDOW_MOUNT
