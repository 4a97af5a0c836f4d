"""The no-cluster demo (make demo): a bad rollout detected and rolled back, all of it real.

On this machine: a local Kubernetes control plane (tests/cluster/controlplane.py), this
process acting as its node so that pods really run (tests/cluster/node.py: each pod of
the model's Deployment is an MLServer process on its own pod IP), Prometheus
(tests/prometheus.py) and the operator (``modelmonitor run``).

The story: the model ``iris-model:v1`` runs as Deployment ``iris`` behind Service
``iris``; docs/examples/rollback.yaml (the same file the docs show) watches its p95
latency and may roll it back. Once the monitor is Healthy with revision 1 recorded as
healthy, ``iris-model:v2-slow`` (0.6 s per request) is rolled out. The script prints the
monitor's rows as they change (as ``kubectl get mm -w`` would, stamped with the seconds
since the rollout), then the rollout history, the monitor's Events, ``status.lastAction``,
the measured times and what Prometheus scraped: the operator's
``modelmonitor_actions_total`` and the model pods' own latency. Everything is shut down
at the end, also on failure or Ctrl-C. State and logs: ``.state/demo/``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster.controlplane import ControlPlane, reap_orphans  # noqa: E402
from tests.cluster.kube import KubeCluster  # noqa: E402
from tests.cluster.node import Backoff, NodeAgent  # noqa: E402
from tests.e2e.model_images import (  # noqa: E402
    IRIS_VERSIONS,
    METRICS_PORT,
    image_name,
    iris_deployment,
    prepare_iris_images,
)
from tests.prometheus import SCRAPE_INTERVAL, PrometheusServer, ScrapeTarget  # noqa: E402
from tests.prometheus import reap_orphans as reap_prometheus  # noqa: E402

NAMESPACE = "demo"
NAME = "iris"  # the Deployment, its Service and the monitor
STATE = ROOT / ".state" / "demo"
EXAMPLE = ROOT / "docs" / "examples" / "rollback.yaml"
REFERENCE = ROOT / "docs" / "examples" / "data" / "iris-reference.csv"
GOOD, BAD = image_name("v1"), image_name("v2-slow")
WAIT = 180.0

T = TypeVar("T")


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not seen within {timeout:.0f}s")
        time.sleep(0.25)


def parse_time(stamp: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


class Demo:
    """The cluster and what runs against it; ``since()`` counts from the bad rollout."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.cluster = cluster
        self.rollout_mono = 0.0
        self.rollout_wall = dt.datetime.now(dt.UTC)

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        proc = self.cluster.kubectl(*args, "-n", NAMESPACE, input=input, timeout=timeout)
        return str(proc.stdout)

    def get(self, *args: str) -> Any:
        return self.cluster.get(*args, "-n", NAMESPACE)

    def status(self) -> dict[str, Any]:
        return dict(self.get("mm", NAME).get("status") or {})

    def since(self, when: dt.datetime | None = None) -> float:
        if when is not None:
            return (when - self.rollout_wall).total_seconds()
        return time.monotonic() - self.rollout_mono

    def serving(self, image: str) -> bool:
        """The Deployment runs ``image`` only, all of its pods ready."""
        dep = self.get("deployment", NAME)
        spec, status = dep["spec"], dep.get("status") or {}
        want = spec["replicas"]
        return bool(
            spec["template"]["spec"]["containers"][0]["image"] == image
            and status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
            and status.get("updatedReplicas") == want
            and status.get("replicas") == want
            and status.get("availableReplicas") == want
        )


# The columns of `kubectl get mm` (crds/), without LAST RUN and AGE, and their widths.
COLUMNS = (
    ("NAME", ".metadata.name", 6),
    ("TARGET", ".spec.target.name", 8),
    ("PHASE", ".status.phase", 10),
    ("DRIFT", ".status.drift.summary", 7),
    ("SLO", ".status.sloSummary", 23),
    ("INCIDENT", ".status.incident.state", 13),
    ("LAST ACTION", ".status.lastAction.summary", 0),
)
SEP = "\x1f"  # between the columns (kubectl's watch output aligns tab-separated ones)


def row(values: list[str]) -> str:
    return "".join(f"{v:{w}}" for v, (_, _, w) in zip(values, COLUMNS, strict=True)).rstrip()


class RowWatch:
    """``kubectl get mm --watch`` in the background, printing the monitor's row each time
    one of its columns changed (not on every status write), stamped with the seconds
    since the rollout. The columns come through ``-o jsonpath`` so that rows line up."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        template = SEP.join(f"{{{path}}}" for _, path, _ in COLUMNS) + '{"\\n"}'
        self.proc = subprocess.Popen(
            [
                demo.cluster.tool("kubectl"),
                f"--kubeconfig={demo.cluster.kubeconfig}",
                "get",
                "mm",
                NAME,
                "-n",
                NAMESPACE,
                "--watch",
                "-o",
                f"jsonpath={template}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        print(f"{'T+':>7}  {row([name for name, _, _ in COLUMNS])}", flush=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        last: list[str] = []
        for line in self.proc.stdout:
            values = line.rstrip("\n").split(SEP)
            if values == last or len(values) != len(COLUMNS):
                continue
            last = values
            print(f"{self.demo.since():+6.1f}s  {row(values)}", flush=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


class DemoPrometheus(PrometheusServer):
    """Prometheus scraping the operator, and the model's pods on their MLServer metrics
    port. Debian's Prometheus has no Kubernetes service discovery, so :class:`PodTargets`
    keeps a file_sd file of the pods' addresses up to date (what kubernetes_sd would do)."""

    def __init__(self, operator_metrics: str) -> None:
        super().__init__("demo", targets=[ScrapeTarget("modelmonitor", operator_metrics)])
        self.pods_file = self.state_dir / "model-pods.json"

    def config(self) -> dict[str, Any]:
        config = super().config()
        sd = {"files": [str(self.pods_file)], "refresh_interval": "1s"}
        config["scrape_configs"].append({"job_name": "model-pods", "file_sd_configs": [sd]})
        return config


class PodTargets:
    """Writes the running pods of Deployment ``iris`` to Prometheus' file_sd file."""

    def __init__(self, demo: Demo, path: Path) -> None:
        self.demo = demo
        self.path = path
        self.stopping = threading.Event()
        self.written: list[dict[str, Any]] | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(1.0):
            with contextlib.suppress(Exception):  # a busy API server: try again next second
                self._update()

    def _update(self) -> None:
        pods = self.demo.get("pods", "-l", f"app={NAME}")["items"]
        targets = [
            {
                "targets": [f"{pod['status']['podIP']}:{METRICS_PORT}"],
                "labels": {
                    "pod": pod["metadata"]["name"],
                    "image": pod["spec"]["containers"][0]["image"],
                },
            }
            for pod in pods
            if pod.get("status", {}).get("podIP") and pod["status"].get("phase") == "Running"
        ]
        if targets != self.written:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(targets))
            tmp.replace(self.path)
            self.written = targets

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def start_operator(cluster: KubeCluster, metrics_port: int) -> subprocess.Popen[bytes]:
    log_path = STATE / "operator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "modelmonitor"),
                "run",
                "--namespace",
                NAMESPACE,
                "--metrics-port",
                str(metrics_port),
                "--health-port",
                str(free_port()),
                "--payload-port",
                str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # The demo's pods and Prometheus listen on 127.x: open loopback explicitly.
            env=cluster.env(
                {
                    "RECHECK_SECONDS": "2",
                    "PYTHONUNBUFFERED": "1",
                    "OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
                }
            ),
            start_new_session=True,
        )

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {proc.returncode}; see {log_path}")
        return "modelmonitor operator starting" in log_path.read_text(errors="replace")

    wait(started, "the operator's start", timeout=60)
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def bring_up(stack: contextlib.ExitStack) -> tuple[Demo, PrometheusServer]:
    """Control plane, node, Prometheus and the operator; each stopped by ``stack``."""
    step("A local Kubernetes control plane: etcd, kube-apiserver, controllers, scheduler")
    reap_orphans(prefix="demo")  # a demo killed with SIGKILL leaves its cluster behind
    reap_prometheus()
    plane = ControlPlane("demo")
    stack.callback(plane.down)
    state = plane.up(timeout=180, owner_pid=os.getpid())
    cluster = KubeCluster(Path(state.kubeconfig), state.server, Path(state.bin_dir), "demo")
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.wait_established("modelmonitors.modelmonitor.io")
    cluster.kubectl("create", "namespace", NAMESPACE)
    print(f"API server {state.server} (up in {state.startup_seconds:.0f}s); CRDs installed")

    step("This process as the cluster's node: pods run as local processes on their own IPs")
    images = prepare_iris_images(
        STATE / "images", versions={v: IRIS_VERSIONS[v] for v in ("v1", "v2-slow")}
    )
    agent = NodeAgent(
        Path(state.kubeconfig),
        work_dir=STATE / "node",
        images=images,
        backoff=Backoff(base=0.5, cap=8.0),
        stop_grace=3.0,
    )
    # The agent's pod watch may notice the API server going away: not worth a warning.
    stack.callback(setattr, logging.getLogger("tests.cluster.node"), "disabled", True)
    stack.callback(agent.stop)
    agent.start()
    if not agent.routable:
        raise RuntimeError("no pod network route (run as root): Services would have no endpoints")
    print(f"node {agent.node_name} Ready, pod network {agent.network.block}")
    print(f"images: {GOOD} (the model), {BAD} (the same model, 0.6 s per request)")

    metrics_port = free_port()
    step("Prometheus: scraping the operator and the model pods' MLServer metrics")
    prom = DemoPrometheus(f"127.0.0.1:{metrics_port}")
    stack.callback(prom.destroy)
    prom.start()
    demo = Demo(cluster)
    stack.callback(PodTargets(demo, prom.pods_file).stop)
    print(f"Prometheus {prom.url}, scraping every {SCRAPE_INTERVAL}")

    step(f"The operator: modelmonitor run --namespace {NAMESPACE}")
    operator = start_operator(cluster, metrics_port)
    stack.callback(stop_process, operator)
    print(f"pid {operator.pid}, metrics on :{metrics_port}, log {STATE / 'operator.log'}")
    return demo, prom


def deploy_v1(demo: Demo) -> None:
    step(f"The model {GOOD}: Deployment and Service {NAME}, and the reference data")
    demo.kubectl("create", "configmap", "iris-reference", f"--from-file=reference.csv={REFERENCE}")
    demo.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump_all(iris_deployment(NAME, GOOD, change_cause="v1"))
    )
    demo.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=120s", timeout=150)
    print(demo.kubectl("get", "pods", "-o", "wide"), end="")

    step(f"kubectl apply -f {EXAMPLE.relative_to(ROOT)}")
    manifest = EXAMPLE.read_text()
    print("...", manifest[manifest.index("  slos:") :].rstrip(), sep="\n")
    demo.kubectl("apply", "-f", str(EXAMPLE))

    def healthy() -> dict[str, Any] | None:
        status = demo.status()
        revisions = status.get("healthyRevisions") or []
        ok = status.get("phase") == "Healthy" and any(r.get("revision") == "1" for r in revisions)
        return status if ok else None

    status = wait(healthy, "Healthy with revision 1 recorded")
    print(demo.kubectl("get", "mm"), end="")
    revisions = yaml.safe_dump(status["healthyRevisions"], sort_keys=False)
    print("status.healthyRevisions:", revisions.rstrip(), sep="\n")


def roll_out_bad_version(demo: Demo) -> dict[str, float]:
    """Roll out v2-slow, print the rows live, return the measured times."""
    step(f"kubectl set image deployment/{NAME} model={BAD}, and the rows as they change")
    demo.rollout_mono = time.monotonic() + 1.0  # the first row: the state before it
    watch = RowWatch(demo)
    try:
        time.sleep(1.0)
        demo.rollout_mono = time.monotonic()
        demo.rollout_wall = dt.datetime.now(dt.UTC)
        demo.kubectl("set", "image", f"deployment/{NAME}", f"model={BAD}")
        demo.kubectl(
            "annotate", f"deployment/{NAME}", "kubernetes.io/change-cause=v2", "--overwrite"
        )
        times: dict[str, float] = {}
        milestones: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
            (f"{BAD} serving", lambda _: demo.serving(BAD)),
            ("first breaching run (Suspect)", lambda s: incident(s) == "Suspect"),
            ("incident confirmed", lambda s: incident(s) in ("Breached", "Remediating")),
            ("rollback done", lambda s: last_action(s).get("type") == "rollback"),
            (f"{GOOD} serving again", lambda _: "rollback done" in times and demo.serving(GOOD)),
            (
                "Healthy / Recovered",
                lambda s: (
                    "rollback done" in times
                    and s.get("phase") == "Healthy"
                    and incident(s) == "Recovered"
                ),
            ),
        ]

        def progress() -> bool:
            status = demo.status()
            for label, reached in milestones:
                if label not in times and reached(status):
                    times[label] = demo.since()
            return "Healthy / Recovered" in times

        wait(progress, "rollback and recovery", timeout=300)
        time.sleep(1)  # the last row
    finally:
        watch.stop()
    return dict(sorted(times.items(), key=lambda item: item[1]))


def incident(status: dict[str, Any]) -> str:
    return str((status.get("incident") or {}).get("state", ""))


def last_action(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status.get("lastAction") or {})


def show_outcome(demo: Demo, times: dict[str, float]) -> None:
    step(f"kubectl rollout history deployment/{NAME}: v1's revision 1 came back as 3")
    print(demo.kubectl("rollout", "history", f"deployment/{NAME}").strip())

    step("The monitor's Events (seconds since the rollout)")
    events = demo.get("events", "--field-selector", f"involvedObject.name={NAME}")["items"]
    events = [e for e in events if e["involvedObject"]["kind"] == "ModelMonitor"]
    for event in sorted(
        events, key=lambda e: (event_time(e), int(e["metadata"]["resourceVersion"]))
    ):
        print(
            f"{demo.since(event_time(event)):+6.0f}s  {event['type']:7}  {event['reason']:18} "
            f"{event['message']}"
        )

    step("status.lastAction")
    print(yaml.safe_dump(last_action(demo.status()), sort_keys=False).rstrip())

    step("Measured (seconds after kubectl set image)")
    previous = 0.0
    for label, at in times.items():
        print(f"{label:32} {at:6.1f}s  (+{at - previous:4.1f}s)")
        previous = at


def event_time(event: dict[str, Any]) -> dt.datetime:
    stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
    return parse_time(stamp) or dt.datetime.now(dt.UTC)


def show_prometheus(prom: PrometheusServer) -> None:
    query = 'modelmonitor_actions_total{monitor="iris"}'
    step(f"Prometheus: {query}")
    for series in prom.wait_for(query, timeout=60):
        labels = series["metric"]
        print(
            f"action={labels['action']} result={labels['result']} "
            f"namespace={labels['namespace']}  {float(series['value'][1]):g}"
        )
    # The model pods' own view (MLServer's summary, one series per pod; the image label
    # comes from PodTargets). The v2 pod is gone: take each series' last scraped value.
    query = (
        "last_over_time(model_infer_request_duration_sum[10m])"
        " / last_over_time(model_infer_request_duration_count[10m])"
    )
    step(f"Prometheus: mean inference time by pod, MLServer metrics on podIP:{METRICS_PORT}")
    print(query)
    try:
        prom.wait_for(f'last_over_time(model_infer_request_duration_count{{image="{BAD}"}}[10m])')
        result = prom.query(query)
    except Exception as exc:  # the pods' metrics are a bonus, not the demo's point
        print(f"(not available: {exc})")
        return
    for series in sorted(result, key=lambda s: s["metric"].get("image", "")):
        labels = series["metric"]
        print(
            f"pod={labels.get('pod', '?'):22} image={labels.get('image', '?'):20} "
            f"{float(series['value'][1]) * 1000:6.1f} ms"
        )


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "operator.log").unlink(missing_ok=True)
    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    code = 1
    try:
        with contextlib.ExitStack() as stack:
            try:
                demo, prom = bring_up(stack)
                deploy_v1(demo)
                times = roll_out_bad_version(demo)
                show_outcome(demo, times)
                show_prometheus(prom)
                code = 0
            except Exception:
                step(f"Failed; logs under {STATE} and {ROOT / '.state' / 'cluster' / 'demo'}")
                with contextlib.suppress(OSError):
                    tail = (STATE / "operator.log").read_text(errors="replace").splitlines()
                    print("operator log, last lines:", *tail[-15:], sep="\n")
                raise
            finally:
                step("Shutting down: operator, Prometheus, pods and node, control plane")
    except KeyboardInterrupt:
        print("\ninterrupted; everything stopped", file=sys.stderr)
        return 130
    print(f"done in {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
