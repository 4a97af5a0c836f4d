"""Fixtures shared by the operator's e2e tests: CRDs installed, the operator process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"


@pytest.fixture(scope="session")
def crds(kube_cluster: KubeCluster) -> KubeCluster:
    """The project's CRDs, applied and Established."""
    for path in sorted(CRD_DIR.glob("*.yaml")):
        kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    kube_cluster.wait_established(
        "modelmonitors.modelmonitor.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"
    )
    return kube_cluster


class OperatorProcess:
    """``modelmonitor run`` as a real child process, logs captured to a file.

    ``module`` is what ``python -m`` runs, with ``run`` and ``args``: ``modelmonitor``,
    or a test's own launcher of the operator (tests/e2e/exit_before_action.py), given
    ``args`` alone.
    """

    def __init__(
        self,
        cluster: KubeCluster,
        log_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
        module: str = "modelmonitor",
    ) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.args = args
        self.extra_env = dict(env or {})
        self.module = module
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        env = self.cluster.env(
            {
                "RECHECK_SECONDS": "2",
                "PYTHONUNBUFFERED": "1",
                "PROMETHEUS_MIN_WINDOW_SECONDS": "2",
                # Model pods and Prometheus run on 127.x here: open loopback explicitly
                # (the operator refuses it by default).
                "OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
                **self.extra_env,
            }
        )
        command = ["run"] if self.module == "modelmonitor" else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *command, *self.args],
            cwd=ROOT,  # where python -m finds a launcher under tests/
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a node dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


JOB_IMAGE = "modelmonitor:dev"  # the harness-as-node runs it as the local CLI
JOB_SERVICE_ACCOUNT = "modelmonitor-job"


def watching(
    cluster: KubeCluster,
    log_path: Path,
    *namespaces: str,
    metrics_port: int | None = None,
    env: dict[str, str] | None = None,
) -> OperatorProcess:
    """An operator watching ``namespaces``, on free ports, logging JSON (not started)."""
    args = [arg for ns in namespaces for arg in ("--namespace", ns)]
    return OperatorProcess(
        cluster,
        log_path,
        *args,
        "--metrics-port",
        str(metrics_port or free_port()),
        "--health-port",
        str(free_port()),
        "--payload-port",
        str(free_port()),
        "--log-format",
        "json",
        env=env,
    )


def start_and_wait(op: OperatorProcess) -> None:
    """Start ``op`` and wait until it has started (its start-up handler logs it)."""
    op.start()
    wait_for(
        lambda: "modelmonitor operator starting" in op.logs() or not op.alive(),
        timeout=60,
        what="operator start",
    )
    if not op.alive():
        pytest.fail(f"operator exited early:\n{op.logs()[-3000:]}")


@pytest.fixture
def operator_process(
    crds: KubeCluster, tmp_path: Path, namespace: str
) -> Iterator[OperatorProcess]:
    """The operator, watching the test's namespace, started and stopped around the test."""
    op = watching(
        crds,
        tmp_path / "operator.log",
        namespace,
        env={"JOB_IMAGE": JOB_IMAGE, "JOB_SERVICE_ACCOUNT": JOB_SERVICE_ACCOUNT},
    )
    try:
        start_and_wait(op)
        time.sleep(0.5)
        yield op
    finally:
        op.stop()
