"""The no-cluster demo: everything real, on this machine, then shut down.

A local Kubernetes control plane (tests/cluster), a real model server (MLServer serving
a scikit-learn model trained on iris, tests/modelserver.py), and the operator itself
(`modelmonitor run`). Three ModelMonitors are applied: one healthy, one whose probe set
has drifted, and one whose target Deployment does not exist yet (it recovers by itself
once the Deployment is created). The script shows what `kubectl get modelmonitors`,
the conditions and the Events say, then stops everything and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.controlplane import ControlPlane  # noqa: E402
from tests.iris import FEATURES, drifted_rows, reference_csv  # noqa: E402
from tests.modelserver import ModelServer, ModelSpec  # noqa: E402

NAMESPACE = "demo"
STATE = ROOT / ".state" / "demo"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))

    def status(self, name: str) -> dict[str, Any]:
        obj = json.loads(self("get", "mm", name, "-n", NAMESPACE, "-o", "json"))
        return dict(obj.get("status") or {})


def monitor(name: str, target: str, url: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"name": target, "endpoint": {"url": url, "protocol": "v2", "model": "iris"}},
        "schedule": {"interval": "15s"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
        "features": [{"name": f, "type": "numerical"} for f in FEATURES],
        "prediction": {"name": "prediction", "type": "categorical"},
        "data": {"probe": {"samples": 60, "batchSize": 10}},
        "slos": [{"name": "p95-latency", "latency": {"percentile": 95, "thresholdMs": 500}}],
    }
    body.update(spec)
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name},
        "spec": body,
    }


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "model", "image": f"{name}:v1"}]},
            },
        },
    }


def wait(kubectl: Kubectl, name: str, what: str, predicate: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(kubectl.status(name)):
            return
        time.sleep(1)
    raise TimeoutError(f"{name}: {what} not seen within {timeout:.0f}s")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((dict(c) for c in status.get("conditions") or [] if c["type"] == kind), {})


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane("demo")
    server = ModelServer(models=(ModelSpec(name="iris"),), workdir=STATE / "mlserver")
    operator: subprocess.Popen[bytes] | None = None
    try:
        step("Starting a local Kubernetes control plane (etcd, apiserver, controllers, scheduler)")
        state = plane.up(timeout=180)
        kubectl = Kubectl(state.kubeconfig)
        kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl("wait", "--for=condition=Established", "crd/modelmonitors.modelmonitor.io")
        print(f"API server {state.server}; CRDs installed")

        step("Starting the model server: MLServer with a scikit-learn model trained on iris")
        server.start(timeout=240)
        print(f"serving the v2 inference protocol on {server.url}")

        step(f"Namespace {NAMESPACE}: the model's Deployment and the reference data")
        kubectl("create", "namespace", NAMESPACE, check=False)
        kubectl.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "iris-reference"},
                    "data": {"reference.csv": reference_csv()},
                },
                deployment("iris-model"),
            ]
        )

        step(f"Starting the operator: modelmonitor run --namespace {NAMESPACE}")
        log = (STATE / "operator.log").open("wb")
        env = dict(os.environ, KUBECONFIG=state.kubeconfig, RECHECK_SECONDS="2")
        operator = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "modelmonitor"),
                "run",
                "--namespace",
                NAMESPACE,
                "--metrics-port",
                str(free_port()),
                "--health-port",
                str(free_port()),
                "--payload-port",
                str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        print(f"operator pid {operator.pid}, log {STATE / 'operator.log'}")

        step("Applying three ModelMonitors")
        drifted = monitor("iris-drift", "iris-model", server.url, drift={"driftShare": 0.2})
        drifted["spec"]["data"]["probe"]["dataset"] = {"inline": drifted_rows()}
        kubectl.apply(
            [
                monitor("iris", "iris-model", server.url),
                drifted,
                monitor("iris-v2", "iris-model-v2", server.url),
            ]
        )
        print("iris: the model as trained; iris-drift: probed with petal_length moved +2.5 cm;")
        print("iris-v2: its Deployment iris-model-v2 does not exist yet")
        wait(kubectl, "iris", "phase Healthy", lambda s: s.get("phase") == "Healthy")
        wait(kubectl, "iris-drift", "phase Drifted", lambda s: s.get("phase") == "Drifted")
        wait(
            kubectl,
            "iris-v2",
            "TargetNotFound",
            lambda s: condition(s, "Ready").get("reason") == "TargetNotFound",
        )

        step("kubectl get modelmonitors")
        print(kubectl("get", "modelmonitors", "-n", NAMESPACE), end="")
        step("Why: the conditions")
        for name in ("iris", "iris-drift", "iris-v2"):
            for cond in kubectl.status(name).get("conditions") or []:
                if cond["type"] != "Ready" or cond["status"] != "True":
                    print(
                        f"{name:11} {cond['type']}={cond['status']} ({cond['reason']}): "
                        f"{cond['message']}"
                    )

        step("Creating the missing Deployment: iris-v2 recovers by itself")
        kubectl.apply([deployment("iris-model-v2")])
        wait(kubectl, "iris-v2", "phase Healthy", lambda s: s.get("phase") == "Healthy")
        print(kubectl("get", "modelmonitors", "-n", NAMESPACE), end="")

        step("Events (only on changes, never one per run)")
        print(
            kubectl(
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                "involvedObject.kind=ModelMonitor",
                "--sort-by=.lastTimestamp",
                "-o",
                "custom-columns=OBJECT:.involvedObject.name,TYPE:.type,"
                "REASON:.reason,MESSAGE:.message",
            ),
            end="",
        )
        step("Shutting down")
        return 0
    finally:
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
        server.remove()
        plane.down()


if __name__ == "__main__":
    sys.exit(main())
