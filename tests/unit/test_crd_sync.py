"""The CRD copies in the Helm chart and manifests/ are byte-identical to crds/.

``make crd`` (hack/sync-crds.sh) writes the copies and ``make verify-crd`` checks them;
``crd_sync_problems`` is the same check in Python, so the unit suite catches a stale
copy without a cluster or a shell.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("crds")
COPIES = (Path("charts/modelmonitor/crds"), Path("manifests/crds"))
SCRIPT = Path("hack/sync-crds.sh")


def crd_sync_problems(root: Path) -> list[str]:
    """Every way the copies under ``root`` differ from ``root/crds``; empty when in sync."""
    sources = {p.name: p.read_bytes() for p in sorted((root / SOURCE).glob("*.yaml"))}
    if not sources:
        return [f"no CRDs in {SOURCE}/"]
    problems: list[str] = []
    for copy_dir in COPIES:
        copies = {p.name: p.read_bytes() for p in sorted((root / copy_dir).glob("*.yaml"))}
        for name, content in sources.items():
            if name not in copies:
                problems.append(f"{copy_dir / name} is missing")
            elif copies[name] != content:
                problems.append(f"{copy_dir / name} differs from {SOURCE / name}")
        problems.extend(f"{copy_dir / name} is stale" for name in copies.keys() - sources.keys())
    return problems


def test_chart_and_manifests_carry_exactly_the_crds_from_the_source() -> None:
    problems = crd_sync_problems(ROOT)
    assert not problems, "run `make crd` and commit the result:\n" + "\n".join(problems)


def test_source_defines_the_modelmonitor_and_kopf_peering_crds() -> None:
    names = set()
    for path in (ROOT / SOURCE).glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition", path
                names.add(doc["metadata"]["name"])
    assert {
        "modelmonitors.modelmonitor.io",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    } <= names


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A scratch tree with the sync script and two CRD sources, no copies yet."""
    (tmp_path / "hack").mkdir()
    shutil.copy(ROOT / SCRIPT, tmp_path / SCRIPT)
    (tmp_path / SOURCE).mkdir()
    (tmp_path / SOURCE / "a.yaml").write_text("kind: CustomResourceDefinition  # a\n")
    (tmp_path / SOURCE / "b.yaml").write_text("kind: CustomResourceDefinition  # b\n")
    return tmp_path


def _script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_script_sync_then_verify_passes(repo_copy: Path) -> None:
    assert _script(repo_copy, "--verify").returncode != 0  # nothing copied yet
    assert _script(repo_copy).returncode == 0
    assert crd_sync_problems(repo_copy) == []
    assert _script(repo_copy, "--verify").returncode == 0


def test_script_verify_reports_a_changed_copy_with_a_diff(repo_copy: Path) -> None:
    _script(repo_copy)
    (repo_copy / COPIES[0] / "a.yaml").write_text("kind: CustomResourceDefinition  # edited\n")
    result = _script(repo_copy, "--verify")
    assert result.returncode == 1
    assert "-kind: CustomResourceDefinition  # a" in result.stderr
    assert "+kind: CustomResourceDefinition  # edited" in result.stderr
    assert crd_sync_problems(repo_copy) == [f"{COPIES[0] / 'a.yaml'} differs from crds/a.yaml"]


def test_script_removes_and_verify_reports_stale_copies(repo_copy: Path) -> None:
    _script(repo_copy)
    (repo_copy / SOURCE / "b.yaml").unlink()
    assert _script(repo_copy, "--verify").returncode == 1
    assert sorted(crd_sync_problems(repo_copy)) == sorted(
        f"{copy_dir / 'b.yaml'} is stale" for copy_dir in COPIES
    )
    assert _script(repo_copy).returncode == 0
    assert not (repo_copy / COPIES[1] / "b.yaml").exists()
    assert _script(repo_copy, "--verify").returncode == 0


def test_script_fails_without_sources(tmp_path: Path) -> None:
    (tmp_path / "hack").mkdir()
    shutil.copy(ROOT / SCRIPT, tmp_path / SCRIPT)
    (tmp_path / SOURCE).mkdir()
    result = _script(tmp_path, "--verify")
    assert result.returncode == 1
    assert "no CRDs" in result.stderr
