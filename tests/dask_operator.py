"""dask-kubernetes' own controller for tests: the real operator that runs DaskJobs.

The controller (PyPI ``dask-kubernetes``, pinned in :data:`VERSION`) lives in its own
virtual environment, ``~/.cache/modelmonitor/dask-kubernetes-<version>/``
(``$MODELMONITOR_CACHE`` moves the root), because its pins (kopf, kr8s) are not ours.
``python -m tests.dask_operator venv`` creates it once (``make deps`` does); a fixture
never downloads. Its CRDs come from the same package (the Helm chart's ``crds/`` folder
inside the wheel), so the CRDs and the controller always match.

:class:`DaskOperator` runs the controller as a local process
(``kopf run -m dask_kubernetes.operator.controller --all-namespaces --standalone``)
against the test cluster with the token of a ServiceAccount bound to the ClusterRole the
project's chart grants its controller (rendered from the chart's own template with
helm), so the test sees what RBAC the real install has. The DaskJob's scheduler,
worker and job pods then run on the harness node like any other pod.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

VERSION = "2026.3.0"
REQUIREMENTS = (f"dask-kubernetes=={VERSION}",)
CHART = "dask_kubernetes/operator/deployment/helm/dask-kubernetes-operator"
ACCOUNT = "dask-kubernetes-operator"
ACCOUNT_NAMESPACE = "dask-operator"


def log(message: str) -> None:
    print(f"[dask-operator] {message}", file=sys.stderr, flush=True)


def venv_path(version: str = VERSION) -> Path:
    root = os.environ.get("MODELMONITOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelmonitor"
    )
    return Path(root) / f"dask-kubernetes-{version}"


def ensure_venv(path: Path | None = None) -> Path:
    """Create (once) the controller's environment and return its directory.

    A stamp records the requirements it was built with; a file lock serialises
    concurrent callers (two test sessions, or ``make deps`` twice).
    """
    venv = path or venv_path()
    stamp = venv / ".modelmonitor-requirements"
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == wanted:
            return venv
        started = time.monotonic()
        log(f"creating {venv} with {' '.join(REQUIREMENTS)}")
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *REQUIREMENTS], check=True)
        stamp.write_text(wanted)
        log(f"{venv} ready in {time.monotonic() - started:.0f} s")
    return venv


def ready() -> bool:
    """True when ``make deps`` built the controller's environment."""
    stamp = venv_path() / ".modelmonitor-requirements"
    return stamp.is_file() and stamp.read_text() == "\n".join(REQUIREMENTS) + "\n"


def package_dir(venv: Path | None = None) -> Path:
    """Where the ``dask_kubernetes`` package is installed in the environment."""
    venv = venv or venv_path()
    found = sorted((venv / "lib").glob("python3*/site-packages/dask_kubernetes"))
    if not found:
        raise FileNotFoundError(f"dask_kubernetes is not installed in {venv}")
    return found[0].parent


def crds(venv: Path | None = None) -> list[dict[str, Any]]:
    """The package's CRDs (DaskCluster, DaskWorkerGroup, DaskJob, DaskAutoscaler)."""
    folder = package_dir(venv) / CHART / "crds"
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.dask_operator")
    parser.add_argument("command", choices=["venv"])
    parser.parse_args(argv)
    print(ensure_venv())


if __name__ == "__main__":
    main()
