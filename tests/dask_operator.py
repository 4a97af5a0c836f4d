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
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import yaml

from tests import venvs
from tests.ports import free_port
from tests.processes import die_with_parent, stop_process

if TYPE_CHECKING:
    from tests.cluster.kube import KubeCluster

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
    """Create (once) the controller's environment and return its directory."""
    return venvs.ensure_stamped_venv(path or venv_path(), REQUIREMENTS, log=log)


def ready() -> bool:
    """True when ``make deps`` built the controller's environment."""
    return venvs.is_built(venv_path(), REQUIREMENTS)


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


CRD_NAMES = (
    "daskclusters.kubernetes.dask.org",
    "daskworkergroups.kubernetes.dask.org",
    "daskjobs.kubernetes.dask.org",
    "daskautoscalers.kubernetes.dask.org",
)


class DaskOperatorError(RuntimeError):
    """The controller could not be set up or did not come up; carries its log tail."""


def install_crds(cluster: KubeCluster, venv: Path | None = None) -> None:
    """The package's CRDs, applied and Established (labelled as a test's)."""
    for crd in crds(venv):
        cluster.apply(crd)
    cluster.kubectl("label", "crd", *CRD_NAMES, "modelmonitor.io/e2e=true", "--overwrite")
    cluster.wait_established(*CRD_NAMES)


def rbac(cluster: KubeCluster, venv: Path | None = None) -> list[dict[str, Any]]:
    """The controller's ServiceAccount, ClusterRole and binding, rendered from the
    package's own Helm chart (what ``helm install`` of dask-kubernetes grants)."""
    chart = package_dir(venv) / CHART
    out = cluster.helm(
        "template",
        "dask-kubernetes",
        str(chart),
        "-n",
        ACCOUNT_NAMESPACE,
        f"--set=serviceAccount.name={ACCOUNT}",
        "--show-only=templates/serviceaccount.yaml",
        "--show-only=templates/clusterrole.yaml",
        "--show-only=templates/clusterrolebinding.yaml",
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        if doc["kind"] == "ServiceAccount":
            doc["metadata"]["namespace"] = ACCOUNT_NAMESPACE
    return docs


def account_kubeconfig(cluster: KubeCluster, path: Path) -> Path:
    """A kubeconfig that authenticates as the controller's ServiceAccount."""
    token = cluster.kubectl(
        "create", "token", ACCOUNT, "-n", ACCOUNT_NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "target", "cluster": entry["cluster"]}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {"cluster": "target", "user": ACCOUNT, "namespace": "default"},
            }
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class DaskOperator:
    """dask-kubernetes' controller as a local process watching every namespace.

    ``start()`` installs the CRDs and the chart's RBAC, then runs the controller with
    the ServiceAccount's token; ``stop()`` terminates it (SIGKILL if it lingers), and
    the child dies with the test process (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, cluster: KubeCluster, workdir: Path, venv: Path | None = None) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.venv = venv or venv_path()
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = 0

    @property
    def log_file(self) -> Path:
        return self.workdir / "dask-kubernetes-controller.log"

    def logs(self, chars: int = 6000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-chars:]
        return ""

    def start(self, timeout: float = 60.0) -> None:
        if not ready():
            raise DaskOperatorError(
                f"{self.venv} is not built: make deps (python -m tests.dask_operator venv)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        install_crds(self.cluster, self.venv)
        self.cluster.kubectl("create", "namespace", ACCOUNT_NAMESPACE, check=False)
        self.cluster.apply(rbac(self.cluster, self.venv))
        kubeconfig = account_kubeconfig(self.cluster, self.workdir / "kubeconfig")
        self.health_port = free_port("127.0.0.1")
        argv = [
            str(self.venv / "bin" / "kopf"),
            "run",
            "-m",
            "dask_kubernetes.operator.controller",
            "--all-namespaces",
            "--standalone",
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
        ]
        env = {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.workdir),
            "KUBECONFIG": str(kubeconfig),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
        }
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.proc.poll() is not None:
                raise DaskOperatorError(f"the controller exited:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise DaskOperatorError(f"the controller not ready in {timeout}s:\n{self.logs()}")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> DaskOperator:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.dask_operator")
    parser.add_argument("command", choices=["venv"])
    parser.parse_args(argv)
    print(ensure_venv())


if __name__ == "__main__":
    main()
