"""``spec.reference.pvc.path`` stays inside the claim: the CRD, the parser and the Job.

The attack: a path such as ``../../run/secrets/kubernetes.io/serviceaccount/token`` or
``/etc/passwd`` read by the run's pod would profile a file that is not the user's
reference. The path is the file's place inside the claim (a leading ``/`` is the
claim's root), a ``..`` segment is refused by the CRD's pattern and by the parser, and
the Job mounts the claim read-only where the run reads it.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from modelmonitor.core.jobs import REFERENCE_MOUNT, JobSettings, build_job
from modelmonitor.core.spec import SpecError, parse_spec
from modelmonitor.core.volume_paths import (
    VOLUME_PATH_PATTERN,
    inside_volume,
    volume_path_problem,
)
from modelmonitor.edge.cli import build_parser

CRD = Path(__file__).resolve().parents[3] / "crds" / "modelmonitor.io_modelmonitors.yaml"
MONITOR = {"metadata": {"name": "credit-batch", "namespace": "ml", "uid": "u-1"}}

GOOD = {
    "reference.parquet": "reference.parquet",
    "/data/reference.parquet": "data/reference.parquet",
    "data//v2/./ref.csv": "data/v2/ref.csv",
    ".hidden/ref.csv": ".hidden/ref.csv",
    "..ref/x": "..ref/x",
    "ref...csv": "ref...csv",
}
CLIMBING = [
    "..",
    "../ref.csv",
    "/../../var/run/secrets/kubernetes.io/serviceaccount/token",
    "data/../../ref.csv",
    "data/..",
    "a/b/../../../c",
]
EMPTY = ["/", "//", ".", "./", "/./."]


def crd_pattern() -> str:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pvc = schema["properties"]["spec"]["properties"]["reference"]["properties"]["pvc"]
    return str(pvc["properties"]["path"]["pattern"])


def test_the_crd_states_the_parser_s_pattern() -> None:
    assert crd_pattern() == VOLUME_PATH_PATTERN


@pytest.mark.parametrize(("path", "relative"), GOOD.items())
def test_paths_inside_the_claim(path: str, relative: str) -> None:
    assert volume_path_problem(path) is None
    assert re.fullmatch(crd_pattern(), path)
    assert inside_volume(path) == PurePosixPath(relative)


@pytest.mark.parametrize("path", CLIMBING + EMPTY)
def test_paths_that_leave_or_name_no_file_are_refused(path: str) -> None:
    assert volume_path_problem(path) is not None
    with pytest.raises(ValueError, match=r"pvc\.path"):
        inside_volume(path)
    if path in CLIMBING:  # the API server refuses them too
        assert re.fullmatch(crd_pattern(), path) is None


def pvc_spec(path: str) -> dict[str, Any]:
    return {
        "target": {"name": "credit-model"},
        "schedule": {"mode": "job"},
        "reference": {"pvc": {"claimName": "credit-data", "path": path}},
    }


@pytest.mark.parametrize("path", CLIMBING)
def test_the_parser_refuses_a_climbing_path_naming_the_field(path: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(pvc_spec(path))
    assert "spec.reference.pvc.path" in str(info.value)


def test_the_job_mounts_the_claim_read_only_and_says_where() -> None:
    spec = parse_spec(pvc_spec("/data/reference.parquet"))
    job = build_job(
        monitor=MONITOR,
        run_id="abc",
        settings=JobSettings(),
        resources=None,
        active_deadline_seconds=60,
        reference_claim=spec.reference.claim_name,
    )
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"] == {"claimName": "credit-data", "readOnly": True}
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert mount == {"name": volume["name"], "mountPath": REFERENCE_MOUNT, "readOnly": True}
    # what the pod runs, read by the command line the image has
    args = build_parser().parse_args(container["args"])
    assert args.reference_root == REFERENCE_MOUNT
    assert (args.namespace, args.name) == ("ml", "credit-batch")


def test_without_a_pvc_reference_nothing_is_mounted() -> None:
    job = build_job(
        monitor=MONITOR,
        run_id="abc",
        settings=JobSettings(),
        resources=None,
        active_deadline_seconds=60,
    )
    pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "--reference-root" not in pod["containers"][0]["args"]
