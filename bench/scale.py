"""Operator scale: one operator replica, N ModelMonitors at a 60 s interval on a cheap source.

Run from the repository root (``make bench-scale`` runs it for 200 and 1,000 monitors)::

    .venv/bin/python bench/scale.py --monitors 200
    .venv/bin/python bench/scale.py --monitors 1000 --profile

What it does, all on loopback:

1. starts its own local control plane (``tests/cluster``, named ``scale-<pid>``), applies
   ``crds/``, creates a namespace with a reference ConfigMap (200 rows, 4 numerical
   columns and a prediction) and one Deployment, the shared target;
2. serves a cheap model endpoint in this process (aiohttp, plain JSON protocol:
   ``POST /predict {"instances": [...]}`` -> ``{"predictions": [...]}``, answered at once);
3. starts the real operator (``python -m modelmonitor run``, JSON logs to a file) and
   creates N monitors in parallel ``kubectl apply`` batches of 100; each probes 5 rows in
   one request every 60 s and runs drift on the answers (``minSamples: 5``);
4. waits until every monitor has finished its first run, then measures a steady-state
   window (``--window``, default 240 s): operator CPU (utime + stime from /proc, in % of
   one core), RSS (VmRSS, sampled every 2 s), run start lag p50/p90/p99 from the deltas
   of the operator's ``modelmonitor_run_start_lag_seconds`` histogram, runs per minute
   against the schedule, and warnings/errors in the operator log; with ``--profile``,
   a py-spy sampling profile of the operator over the window (non-blocking, so it does
   not pause the process);
5. prints a table, writes ``bench/results/scale-<N>.json`` and stops everything it
   started (operator, endpoint, control plane), also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modelmonitor.core.scheduling import jitter_seconds  # noqa: E402
from tests.cluster.controlplane import ControlPlane, reap_orphans  # noqa: E402
from tests.cluster.kube import KubeCluster, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FEATURES = ("f0", "f1", "f2", "f3")
REFERENCE_ROWS = 200
BATCH = 100  # monitors per kubectl apply
SPREAD_BATCH = 20  # with --spread-creation
APPLY_WORKERS = 4
SAMPLE_SECONDS = 2.0
SCRAPE_SECONDS = 15.0  # a typical Prometheus scrape interval
CLUSTER_PREFIX = "scale-"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LAG = "modelmonitor_run_start_lag_seconds"
DURATION = "modelmonitor_run_duration_seconds"


# -- the cheap source -------------------------------------------------------------------------
def _predict(instance: Any) -> int:
    values = list(instance.values()) if isinstance(instance, dict) else list(instance)
    return int(float(values[0]) + float(values[1]) > 0)


class CheapEndpoint:
    """A plain-JSON model endpoint on loopback, in a thread of its own; answers at once."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        return web.json_response({"predictions": [_predict(x) for x in body["instances"]]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/predict", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def reference_csv(rows: int = REFERENCE_ROWS, seed: int = 0) -> str:
    """Four numerical features and the cheap model's answer on them."""
    data = np.random.default_rng(seed).normal(size=(rows, len(FEATURES)))
    lines = [",".join([*FEATURES, "prediction"])]
    for row in data:
        lines.append(",".join([*(f"{v:.4f}" for v in row), str(_predict(row))]))
    return "\n".join(lines) + "\n"


# -- objects --------------------------------------------------------------------------------
def setup_objects(namespace: str) -> list[dict[str, Any]]:
    labels = {"app": "scale-model"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "scale-reference", "namespace": namespace},
            "data": {"reference.csv": reference_csv()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "scale-model", "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "model", "image": "scale-model:v1"}]},
                },
            },
        },
    ]


def monitor(name: str, namespace: str, url: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "target": {
                "kind": "Deployment",
                "name": "scale-model",
                "endpoint": {"url": url, "protocol": "json", "path": "/predict"},
            },
            "schedule": {"interval": interval},
            "reference": {"configMapRef": {"name": "scale-reference", "key": "reference.csv"}},
            "features": [{"name": f, "type": "numerical"} for f in FEATURES],
            "prediction": {"name": "prediction", "type": "categorical"},
            "data": {"probe": {"samples": 5, "batchSize": 5, "timeoutSeconds": 5}},
            "drift": {"minSamples": 5},
        },
    }


def monitor_name(i: int) -> str:
    return f"mm-{i:05d}"


def create_monitors(
    cluster: KubeCluster, namespace: str, url: str, n: int, interval: str, spread: float = 0.0
) -> float:
    """Apply N monitors in parallel batches; return the seconds it took.

    With ``spread``, batches of 20 start evenly over that many seconds instead of all at
    once, so that the monitors' first runs (and so their phases in the schedule) spread.
    """
    size = SPREAD_BATCH if spread > 0 else BATCH
    batches = [
        [monitor(monitor_name(i), namespace, url, interval) for i in range(s, min(s + size, n))]
        for s in range(0, n, size)
    ]
    t0 = time.monotonic()

    def apply(k: int, batch: list[dict[str, Any]]) -> None:
        time.sleep(max(0.0, t0 + k * spread / len(batches) - time.monotonic()))
        cluster.apply(yaml.safe_dump_all(batch), "--timeout=120s")

    with concurrent.futures.ThreadPoolExecutor(APPLY_WORKERS) as pool:
        futures = [pool.submit(apply, k, batch) for k, batch in enumerate(batches)]
        for future in futures:
            future.result()
    return time.monotonic() - t0


def monitor_states(cluster: KubeCluster, namespace: str) -> list[tuple[str, str]]:
    """(lastRun.time, phase) of every monitor; empty strings where unset."""
    template = '{range .items[*]}{.status.lastRun.time}{"|"}{.status.phase}{"\\n"}{end}'
    out = cluster.kubectl(
        "get", "mm", "-n", namespace, "-o", f"jsonpath={template}", timeout=120
    ).stdout
    states = []
    for line in out.splitlines():
        last, _, phase = line.partition("|")
        states.append((last, phase))
    return states


# -- the operator process ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Operator:
    cluster: KubeCluster
    namespace: str
    log_path: Path
    standalone: bool
    env: dict[str, str]
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "modelmonitor",
            "run",
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(free_port()),
            "--log-format",
            "json",
        ]
        if self.standalone:
            args.append("--standalone")
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Model pods listen on 127.x here: open loopback (refused by default).
            env=self.cluster.env(
                {"PYTHONUNBUFFERED": "1", "OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8", **self.env}
            ),
            start_new_session=True,
        )
        wait_for(
            lambda: (
                "modelmonitor operator starting" in self.log_path.read_text(errors="replace")
                or self.proc is None
                or self.proc.poll() is not None
            ),
            timeout=60,
            what="operator start",
        )
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited early; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """The /metrics page as {sample name: {labels: value}}."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = collections.defaultdict(dict)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[s.name][tuple(sorted(s.labels.items()))] = s.value
        return out


# -- measurements -------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    ticks: dict[str, int]  # process -> utime + stime
    rss_kib: int  # operator
    threads: int  # operator


def proc_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Sampler:
    """Samples the operator (and the control plane's processes) every few seconds."""

    def __init__(self, pids: dict[str, int], interval: float = SAMPLE_SECONDS) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _take(self) -> None:
        ticks = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                ticks[name] = proc_ticks(pid)
        try:
            status = proc_status(self.pids["operator"])
        except OSError:
            return
        rss = int(status.get("VmRSS", "0 kB").split()[0])
        self.samples.append(Sample(time.monotonic(), ticks, rss, int(status.get("Threads", 0))))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


def cpu_percent(a: Sample, b: Sample, name: str) -> float | None:
    if name not in a.ticks or name not in b.ticks or b.t <= a.t:
        return None
    return 100.0 * (b.ticks[name] - a.ticks[name]) / CLK_TCK / (b.t - a.t)


def histogram(
    page: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str
) -> tuple[dict[float, float], float, float]:
    """Cumulative buckets {le: count}, count and sum, summed over all label sets."""
    buckets: dict[float, float] = collections.defaultdict(float)
    for labels, value in page.get(f"{name}_bucket", {}).items():
        le = dict(labels)["le"]
        buckets[float(le)] += value
    count = sum(page.get(f"{name}_count", {}).values())
    total = sum(page.get(f"{name}_sum", {}).values())
    return dict(buckets), count, total


def histogram_delta(
    before: dict[str, dict[tuple[tuple[str, str], ...], float]],
    after: dict[str, dict[tuple[tuple[str, str], ...], float]],
    name: str,
) -> tuple[dict[float, float], float, float]:
    b0, c0, s0 = histogram(before, name)
    b1, c1, s1 = histogram(after, name)
    return {le: b1[le] - b0.get(le, 0.0) for le in b1}, c1 - c0, s1 - s0


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        if buckets[le] >= rank:
            if le == float("inf"):
                return lower  # beyond the largest finite bound: report that bound
            inside = buckets[le] - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, buckets[le]
    return lower


def share_within(buckets: dict[float, float], bound: float) -> float | None:
    total = buckets.get(float("inf"), 0.0)
    return buckets.get(bound, 0.0) / total if total else None


def log_problems(path: Path) -> dict[str, Any]:
    """Warnings and errors in the operator's JSON log, grouped by message."""
    counts: collections.Counter[str] = collections.Counter()
    by_level: collections.Counter[str] = collections.Counter()
    lines = 0
    with path.open(errors="replace") as handle:
        for line in handle:
            lines += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if line.strip():
                    by_level["unparsed"] += 1
                    counts[line.strip()[:160]] += 1
                continue
            level = str(record.get("severity", "")).lower()
            if level in ("warn", "warning", "error", "fatal", "critical"):
                by_level[level] += 1
                counts[f"{level}: {str(record.get('message', ''))[:160]}"] += 1
    return {
        "log_lines": lines,
        "by_level": dict(by_level),
        "top": [{"message": m, "count": c} for m, c in counts.most_common(10)],
    }


# -- profiling ----------------------------------------------------------------------------------
PROFILE_GROUPS = {
    "monitoring runs (modelmonitor.engine.runner)": "(modelmonitor/engine/runner.py",
    "status writes (modelmonitor.adapters.kube)": "(modelmonitor/adapters/kube.py",
    "run loops (modelmonitor.engine.runloop)": "(modelmonitor/engine/runloop.py",
    "kopf: per-event processing": "(kopf/_core/reactor/processing.py",
    "kopf: watch streams": "(kopf/_cogs/clients/watching.py",
    "kopf: daemons and timers": "(kopf/_core/engines/daemons.py",
    "kopf (all)": "(kopf/",
    "kubernetes client": "(kubernetes/",
    "urllib3": "(urllib3/",
    "aiohttp": "(aiohttp/",
    "prometheus_client": "(prometheus_client/",
    "logging": "(logging/",
    "json": "(json/",
}


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy over the window: only samples holding the GIL, i.e. Python CPU time."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile", file=sys.stderr)
        return None
    argv = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--gil"]
    argv += ["--rate", "100", "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame_path(frame: str) -> str:
    return frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]


def _frame_key(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (to/file.py)``."""
    func = frame.partition(" (")[0]
    return f"{func} ({'/'.join(_frame_path(frame).split('/')[-2:])})"


def _owner(frames: Sequence[str]) -> str:
    """Who the CPU was spent for: the innermost modelmonitor or kopf frame's file."""
    for frame in reversed(frames):
        path = _frame_path(frame)
        if path.startswith(("modelmonitor/", "kopf/")):
            return path
    return f"other: {_frame_path(frames[-1]).split('/')[0]}"


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function, per group and per owner (py-spy raw output)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    owners: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[_frame_key(frames[-1])] += count
        owners[_owner(frames)] += count
        for key in {_frame_key(f) for f in frames}:
            inclusive[key] += count
        for group, marker in PROFILE_GROUPS.items():
            if marker in stack:
                groups[group] += count
    if not total:
        return {"samples": 0}

    def shares(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[k, round(v / total, 4)] for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "groups_inclusive": {g: round(groups[g] / total, 4) for g in PROFILE_GROUPS},
        "owners": shares(owners),
        "self": shares(own),
        "inclusive": shares(inclusive),
    }


# -- the benchmark -------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(proc_status_meminfo().get("MemTotal", "0 kB").split()[0])
    import kopf

    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "kopf": getattr(kopf, "__version__", None) or _dist_version("kopf"),
        "kernel": platform.release(),
    }


def proc_status_meminfo() -> dict[str, str]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def interval_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def wait_first_runs(
    cluster: KubeCluster, namespace: str, n: int, t0: float, timeout: float, out: TextIO
) -> dict[str, float | None]:
    """Poll until every monitor has a lastRun; times are from the start of creation."""
    ready_at: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        states = monitor_states(cluster, namespace)
        phased = sum(1 for _, phase in states if phase)
        ran = sum(1 for last, _ in states if last)
        elapsed = time.monotonic() - t0
        print(f"  {elapsed:6.1f}s  validated {phased}/{n}  first run {ran}/{n}", file=out)
        if ready_at is None and phased >= n:
            ready_at = elapsed
        if ran >= n and len(states) >= n:
            return {"all_validated_seconds": ready_at, "all_first_run_seconds": elapsed}
        if time.monotonic() > deadline:
            return {"all_validated_seconds": ready_at, "all_first_run_seconds": None}
        time.sleep(5)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C does, through the finally blocks."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.monitors
    interval = interval_seconds(args.interval)
    namespace = "scale"
    work = Path(tempfile.mkdtemp(prefix=f"modelmonitor-scale-{n}-"))
    log_path = work / "operator.log"
    print(f"work dir {work} (operator log: {log_path})")
    result: dict[str, Any] = {
        "monitors": n,
        "interval_seconds": interval,
        "window_seconds": args.window,
        "started": now_utc(),
        "machine": machine(),
        "load_average_start": loadavg(),
        "operator_env": dict(args.env),
        "standalone": args.standalone,
        "spread_creation_seconds": args.spread_creation,
    }
    reap_orphans(prefix=CLUSTER_PREFIX)
    plane = ControlPlane(f"{CLUSTER_PREFIX}{os.getpid()}")
    endpoint = CheapEndpoint()
    operator: Operator | None = None
    sampler: Sampler | None = None
    with contextlib.ExitStack() as stack:
        t_cluster = time.monotonic()
        state = plane.up(timeout=180.0, owner_pid=os.getpid())
        stack.callback(plane.down)
        cluster = KubeCluster(
            kubeconfig=Path(state.kubeconfig),
            server=state.server,
            bin_dir=Path(state.bin_dir),
            name=plane.name,
            managed=True,
        )
        print(f"control plane {plane.name} up in {time.monotonic() - t_cluster:.1f}s")
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        # Right after the apply the CRDs may have no conditions yet: retry the wait.
        wait_for(
            lambda: cluster.kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=30s",
                "crd/modelmonitors.modelmonitor.io",
                "crd/kopfpeerings.kopf.dev",
            ),
            timeout=90,
            interval=1.0,
            what="CRDs established",
        )
        cluster.apply(setup_objects(namespace))
        endpoint.start()
        stack.callback(endpoint.stop)

        operator = Operator(cluster, namespace, log_path, args.standalone, dict(args.env))
        stack.callback(operator.stop)
        operator.start()
        pids = {"operator": operator.pid, **state.pids}
        sampler = Sampler(pids)
        sampler.start()
        stack.callback(sampler.stop)
        time.sleep(1.0)

        print(f"creating {n} monitors ...")
        t0 = time.monotonic()
        result["create_seconds"] = round(
            create_monitors(
                cluster, namespace, endpoint.url, n, args.interval, args.spread_creation
            ),
            1,
        )
        print(f"  created in {result['create_seconds']}s; waiting for every first run")
        first = wait_first_runs(cluster, namespace, n, t0, args.first_run_timeout, sys.stdout)
        result["first_run"] = first
        if first["all_first_run_seconds"] is None:
            raise RuntimeError(f"not every monitor ran within {args.first_run_timeout}s")
        startup_samples = sampler.between(t0, time.monotonic())
        result["startup"] = {
            "rss_mib_max": round(max(s.rss_kib for s in startup_samples) / 1024, 1),
            "cpu_percent": _round(cpu_percent(startup_samples[0], startup_samples[-1], "operator")),
        }

        # Let the first runs' bunching settle into the steady schedule.
        time.sleep(args.settle)
        result["window"] = measure(args, operator, sampler, work)
        result["endpoint_requests"] = endpoint.requests
        states = monitor_states(cluster, namespace)
        result["phases"] = dict(collections.Counter(phase or "(none)" for _, phase in states))
        result["expected_runs_per_minute"] = expected_rate(
            namespace, n, interval, result["window"]["run_duration_mean_seconds"] or 0.0
        )
        result["load_average_end"] = loadavg()
        result["log"] = log_problems(log_path)
        result["operator_alive_at_end"] = operator.alive()
    result["finished"] = now_utc()
    return result


def measure(
    args: argparse.Namespace, operator: Operator, sampler: Sampler, work: Path
) -> dict[str, Any]:
    print(f"measuring a {args.window:.0f}s steady-state window ...")
    profile_out = work / "profile.txt"
    spy = start_profile(operator.pid, args.window - 5, profile_out) if args.profile else None
    busy0 = machine_ticks()
    t0 = time.monotonic()
    pages = [(t0, operator.scrape())]
    end = t0 + args.window
    while time.monotonic() < end:
        time.sleep(min(SCRAPE_SECONDS, max(0.0, end - time.monotonic())))
        pages.append((time.monotonic(), operator.scrape()))
    t1 = time.monotonic()
    busy1 = machine_ticks()
    samples = sampler.between(t0 - SAMPLE_SECONDS, t1 + SAMPLE_SECONDS)
    first, last = samples[0], samples[-1]
    rss = [s.rss_kib / 1024 for s in samples]
    lag, lag_count, _ = histogram_delta(pages[0][1], pages[-1][1], LAG)
    dur, dur_count, dur_sum = histogram_delta(pages[0][1], pages[-1][1], DURATION)
    marks = _minute_marks(samples)
    short = [cpu_percent(a, b, "operator") or 0.0 for a, b in itertools.pairwise(samples)]
    window: dict[str, Any] = {
        "seconds": round(t1 - t0, 1),
        "cpu_percent": _round(cpu_percent(first, last, "operator")),
        "cpu_percent_per_minute": [
            _round(cpu_percent(a, b, "operator")) for a, b in itertools.pairwise(marks)
        ],
        "cpu_percent_2s_p50_p90_max": [
            _round(float(np.percentile(short, q))) for q in (50, 90, 100)
        ],
        "apiserver_cpu_percent": _round(cpu_percent(first, last, "kube-apiserver")),
        "etcd_cpu_percent": _round(cpu_percent(first, last, "etcd")),
        "machine_busy_percent": round(
            100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 1
        ),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_median": round(statistics.median(rss), 1),
        "rss_mib_max_whole_run": round(max(s.rss_kib for s in sampler.samples) / 1024, 1),
        "threads_max": max(s.threads for s in samples),
        "runs": int(lag_count),
        "runs_per_minute": round(lag_count * 60 / (t1 - t0), 1),
        "timeline": timeline(pages, sampler),
        "lag_p50_seconds": _round(quantile(lag, 0.5), 3),
        "lag_p90_seconds": _round(quantile(lag, 0.9), 3),
        "lag_p99_seconds": _round(quantile(lag, 0.99), 3),
        "lag_share_within_1s": _round(share_within(lag, 1.0), 4),
        "lag_share_within_5s": _round(share_within(lag, 5.0), 4),
        "lag_buckets": {str(k): v for k, v in sorted(lag.items())},
        "run_duration_mean_seconds": _round(dur_sum / dur_count if dur_count else None, 4),
        "run_duration_p50_seconds": _round(quantile(dur, 0.5), 3),
        "run_duration_p99_seconds": _round(quantile(dur, 0.99), 3),
        "load_average_during": loadavg(),
    }
    if spy is not None:
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if profile_out.exists():
            window["profile"] = summarize_profile(profile_out)
            window["profile"]["raw_file"] = str(profile_out)
        else:
            window["profile"] = {"error": err.decode(errors="replace")[-500:]}
    return window


def timeline(
    pages: Sequence[tuple[float, dict[str, dict[tuple[tuple[str, str], ...], float]]]],
    sampler: Sampler,
) -> list[dict[str, Any]]:
    """Per scrape interval: runs, how late they started, how long they took, operator CPU."""
    rows = []
    t_start = pages[0][0]
    for (ta, pa), (tb, pb) in itertools.pairwise(pages):
        lag, count, _ = histogram_delta(pa, pb, LAG)
        _, dur_count, dur_sum = histogram_delta(pa, pb, DURATION)
        inside = sampler.between(ta, tb)
        cpu = cpu_percent(inside[0], inside[-1], "operator") if len(inside) > 1 else None
        late = share_within(lag, 5.0)
        rows.append(
            {
                "t": round(tb - t_start),
                "runs_per_minute": round(count * 60 / (tb - ta), 1),
                "lag_p99_seconds": _round(quantile(lag, 0.99), 2),
                "lag_share_over_5s": None if late is None else round(1 - late, 3),
                "run_duration_mean_seconds": _round(dur_sum / dur_count if dur_count else None, 3),
                "cpu_percent": _round(cpu),
            }
        )
    return rows


def _minute_marks(samples: Sequence[Sample]) -> list[Sample]:
    marks = [samples[0]]
    for s in samples[1:]:
        if s.t - marks[-1].t >= 60:
            marks.append(s)
    return marks


def expected_rate(namespace: str, n: int, interval: float, duration: float) -> dict[str, float]:
    """Runs per minute the schedule asks for: the interval runs from one run's end to the
    next start, plus each monitor's fixed jitter, so slightly under N per minute."""
    per_second = sum(
        1.0 / (interval + jitter_seconds(f"{namespace}/{monitor_name(i)}", interval) + duration)
        for i in range(n)
    )
    return {"nominal": n * 60.0 / interval, "with_jitter_and_duration": round(per_second * 60, 1)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# -- output -------------------------------------------------------------------------------------
def table(r: dict[str, Any]) -> str:
    w = r["window"]
    exp = r["expected_runs_per_minute"]
    rows = [
        ("monitors", f"{r['monitors']} at {r['interval_seconds']:g}s"),
        ("create (kubectl apply)", f"{r['create_seconds']} s"),
        ("all validated", f"{r['first_run']['all_validated_seconds']:.0f} s"),
        ("all first runs done", f"{r['first_run']['all_first_run_seconds']:.0f} s"),
        ("window", f"{w['seconds']:.0f} s"),
        ("operator CPU (% of one core)", f"{w['cpu_percent']}"),
        ("operator CPU per minute", ", ".join(str(v) for v in w["cpu_percent_per_minute"])),
        (
            "operator CPU 2 s p50/p90/max",
            " / ".join(str(v) for v in w["cpu_percent_2s_p50_p90_max"]),
        ),
        ("RSS steady (median) / max", f"{w['rss_mib_median']} / {w['rss_mib_max']} MiB"),
        ("RSS max, whole run", f"{w['rss_mib_max_whole_run']} MiB"),
        ("start lag p50 / p90 / p99", _lags(w)),
        (
            "runs within 1 s / 5 s of due",
            f"{w['lag_share_within_1s']} / {w['lag_share_within_5s']}",
        ),
        (
            "runs per minute",
            f"{w['runs_per_minute']} (schedule {exp['with_jitter_and_duration']}, "
            f"nominal {exp['nominal']:g})",
        ),
        (
            "run duration mean / p99",
            f"{w['run_duration_mean_seconds']} / {w['run_duration_p99_seconds']} s",
        ),
        ("apiserver / etcd CPU", f"{w['apiserver_cpu_percent']} / {w['etcd_cpu_percent']} %"),
        ("machine busy (2 cores = 100)", f"{w['machine_busy_percent']} %"),
        (
            "load average start/window/end",
            f"{r['load_average_start'][0]} / "
            f"{w['load_average_during'][0]} / {r['load_average_end'][0]}",
        ),
        ("phases", ", ".join(f"{k} {v}" for k, v in sorted(r["phases"].items()))),
        ("log warnings/errors", json.dumps(r["log"]["by_level"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _lags(w: dict[str, Any]) -> str:
    return (
        " / ".join(
            "-" if w[k] is None else f"{w[k]:.3f}"
            for k in ("lag_p50_seconds", "lag_p90_seconds", "lag_p99_seconds")
        )
        + " s"
    )


def parse_env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=200, help="number of ModelMonitors")
    parser.add_argument("--interval", default="60s", help="spec.schedule.interval")
    parser.add_argument("--window", type=float, default=240.0, help="steady-state seconds")
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds between the last first run and the window",
    )
    parser.add_argument("--first-run-timeout", type=float, default=900.0)
    parser.add_argument(
        "--spread-creation",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="apply the monitors evenly over this many seconds (default: all at once)",
    )
    parser.add_argument("--standalone", action="store_true", help="operator without peering")
    parser.add_argument(
        "--env",
        type=parse_env,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra operator environment (e.g. MAX_CONCURRENT_RUNS=32); repeatable",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy profile of the window")
    parser.add_argument("--output", type=Path, help="default bench/results/scale-<N>.json")
    args = parser.parse_args(argv)
    if args.window < 60:
        parser.error("--window must be at least 60 s (one schedule interval)")
    with cleanup_on_signals():
        result = run(args)
    output = args.output or RESULTS / f"scale-{args.monitors}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
