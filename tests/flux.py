"""Flux's source-controller and kustomize-controller as local processes, for GitOps e2e tests.

The binaries and the Flux CRDs are built once from source by
``tests/cluster/build-flux.sh`` (through the Go module proxy, versions pinned in
tests/cluster/versions.env) into ``~/.cache/modelmonitor/flux/<versions>/``
(``$MODELMONITOR_FLUX_BIN`` names a ready directory instead). :class:`FluxControllers`
runs both against a cluster's kubeconfig as they run in a cluster, less the Pod:
leader election off, metrics and health on free loopback ports, source-controller's
artifact storage in a directory of the test and served on loopback
(``--storage-adv-addr``), so kustomize-controller downloads the artifacts it applies
from it. Each child gets SIGKILL if the test process dies (``PR_SET_PDEATHSIG``).

    with FluxControllers(cluster, tmp_path / "flux") as flux:
        ...  # GitRepository + Kustomization objects are reconciled
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import yaml

from tests import processes
from tests.cluster.kube import KubeCluster
from tests.ports import free_port

BUILD_SCRIPT = Path(__file__).resolve().parent / "cluster" / "build-flux.sh"
CONTROLLERS = ("source-controller", "kustomize-controller")
CRD_NAMES = (
    "gitrepositories.source.toolkit.fluxcd.io",
    "kustomizations.kustomize.toolkit.fluxcd.io",
)


class FluxHarnessError(RuntimeError):
    """The Flux controllers could not be built or started; carries the log tail."""


def ensure_flux() -> Path:
    """The directory with both controllers and ``crds/``, built once if needed."""
    env = os.environ.get("MODELMONITOR_FLUX_BIN")
    if env:
        bin_dir = Path(env).expanduser().resolve()
    else:
        try:
            out = subprocess.run(
                ["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
            ).stdout
        except subprocess.CalledProcessError as exc:
            raise FluxHarnessError(
                f"{BUILD_SCRIPT} failed (exit {exc.returncode}); see its messages above"
            ) from exc
        lines = out.strip().splitlines()
        if not lines:
            raise FluxHarnessError(f"{BUILD_SCRIPT} printed no directory")
        bin_dir = Path(lines[-1])
    missing = [c for c in CONTROLLERS if not os.access(bin_dir / c, os.X_OK)]
    if missing or not list((bin_dir / "crds").glob("*.yaml")):
        raise FluxHarnessError(f"{bin_dir} lacks {', '.join(missing) or 'crds/*.yaml'}")
    return bin_dir


def install_crds(cluster: KubeCluster, bin_dir: Path) -> None:
    """Flux's own CRDs (source and kustomize APIs), applied and Established.

    They replace the stand-in CRDs of the same names (tests/e2e/data/gitops-owner-crds.yaml)
    and carry the same label ``modelmonitor.io/e2e=true``, which tells
    tests/e2e/test_gitops_rollback.py that a test installed them, so it may put its
    stand-ins back (it leaves a real Flux installation's CRDs alone).
    """
    paths = sorted((bin_dir / "crds").glob("*.yaml"))
    for path in paths:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [str(yaml.safe_load(p.read_text())["metadata"]["name"]) for p in paths]
    cluster.kubectl("label", "crd", *names, "modelmonitor.io/e2e=true", "--overwrite")
    cluster.wait_established(*CRD_NAMES)


class FluxControllers:
    """source-controller and kustomize-controller watching all namespaces of ``cluster``."""

    def __init__(self, cluster: KubeCluster, workdir: Path, bin_dir: Path | None = None) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.bin_dir = bin_dir or ensure_flux()
        self.storage_port = free_port("127.0.0.1")
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._health: dict[str, int] = {}

    def log_file(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def logs(self, name: str, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file(name).read_text(errors="replace")[-chars:]
        return ""

    def _args(self, name: str) -> list[str]:
        health = free_port("127.0.0.1")
        self._health[name] = health
        common = [
            f"--metrics-addr=127.0.0.1:{free_port('127.0.0.1')}",
            f"--health-addr=127.0.0.1:{health}",
            "--enable-leader-election=false",
            "--watch-all-namespaces=true",
            "--log-level=debug",
            "--log-encoding=json",
            "--concurrent=4",
        ]
        if name == "source-controller":
            return [
                *common,
                f"--storage-path={self.workdir / 'storage'}",
                f"--storage-addr=127.0.0.1:{self.storage_port}",
                f"--storage-adv-addr=127.0.0.1:{self.storage_port}",
            ]
        return [*common, "--no-remote-bases=true"]

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "storage").mkdir(exist_ok=True)
        env = self.cluster.env({"RUNTIME_NAMESPACE": "default", "HOME": str(self.workdir)})
        for name in CONTROLLERS:
            with self.log_file(name).open("ab") as log:
                self._procs[name] = subprocess.Popen(
                    [str(self.bin_dir / name), *self._args(name)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.workdir,
                    preexec_fn=processes.die_with_parent,
                )
        deadline = time.monotonic() + timeout
        for name, proc in self._procs.items():
            while True:
                if proc.poll() is not None:
                    raise FluxHarnessError(f"{name} exited:\n{self.logs(name)}")
                if self._ready(name):
                    break
                if time.monotonic() > deadline:
                    raise FluxHarnessError(f"{name} not ready in {timeout}s:\n{self.logs(name)}")
                time.sleep(0.2)

    def _ready(self, name: str) -> bool:
        url = f"http://127.0.0.1:{self._health[name]}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
        return False

    def alive(self) -> bool:
        return all(p.poll() is None for p in self._procs.values())

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()

    def __enter__(self) -> FluxControllers:
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
