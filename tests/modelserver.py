"""A real model server for tests: MLServer serving scikit-learn models trained here.

MLServer (PyPI ``mlserver`` + ``mlserver-sklearn``) lives in its own virtual environment,
``.state/venvs/mlserver`` by default (``MODELMONITOR_MLSERVER_VENV`` overrides it),
because its dependency pins are not ours. :func:`ensure_venv` creates it once (about two
minutes with downloads, seconds from pip's cache) and is safe to call from concurrent
test sessions. Models are trained inside that environment, so the pickled model and the
serving scikit-learn always match.

One server can serve several models (:class:`ModelSpec`): the real one, and variants for
failure tests - slow (``delay_seconds``), erroring (every ``fail_every``-th request gets
``fail_status``), or trained on shuffled labels (right format, wrong answers). The
variants run through a small MLServer runtime (a subclass of the scikit-learn runtime)
written next to the model.

Ports: HTTP (Open Inference Protocol v2 REST; MLServer does not speak KServe v1), gRPC
and metrics, each a free loopback port. Prometheus scrapes ``metrics_url``
(``http://HOST:METRICS_PORT/metrics``): ``model_infer_request_success_total``,
``model_infer_request_failure_total``, ``model_infer_request_duration``,
``rest_server_requests_total`` and ``rest_server_request_duration_seconds`` labelled by
model / path and status code.

Command line: ``python -m tests.modelserver venv`` creates the environment;
``python -m tests.modelserver serve`` starts a server with the test models until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests import processes, venvs
from tests.ports import free_port

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".state"
DEFAULT_VENV = STATE / "venvs" / "mlserver"
SERVERS_DIR = STATE / "modelserver"

# Versions known to work together on Python 3.11 (see docs/sources.md).
REQUIREMENTS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1")

Dataset = Literal["iris", "breast_cancer"]

_TRAIN = """\
import json, sys
import joblib
import numpy as np
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

spec = json.loads(sys.argv[1])
X, y = getattr(datasets, "load_" + spec["dataset"])(return_X_y=True)
if spec["shuffle_labels"]:
    y = np.random.default_rng(spec["seed"]).permutation(y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
model.fit(X, y)
joblib.dump(model, spec["path"])
print(json.dumps({"accuracy": float(model.score(X, y))}))
"""

# A scikit-learn runtime with injectable slowness and failures, for failure tests.
_RUNTIME = """\
import asyncio

from mlserver.errors import MLServerError
from mlserver_sklearn import SKLearnModel


class BehaviourModel(SKLearnModel):
    async def load(self):
        params = self.settings.parameters
        extra = (params.extra if params is not None else None) or {}
        self._delay = float(extra.get("delay_seconds", 0.0))
        self._fail_every = int(extra.get("fail_every", 0))
        self._fail_status = int(extra.get("fail_status", 503))
        self._count = 0
        return await super().load()

    async def predict(self, payload):
        self._count += 1
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        if self._fail_every and self._count % self._fail_every == 0:
            raise MLServerError(
                f"injected failure of request {self._count}", status_code=self._fail_status
            )
        return await super().predict(payload)
"""


def log(message: str) -> None:
    print(f"[modelserver] {message}", file=sys.stderr, flush=True)


# --- the virtual environment ---------------------------------------------------------------


def venv_path() -> Path:
    return Path(os.environ.get("MODELMONITOR_MLSERVER_VENV") or DEFAULT_VENV)


def ensure_venv(path: Path | None = None, *, python: str | None = None) -> Path:
    """Create (once) the MLServer environment and return its directory.

    Idempotent: a stamp file records the requirements it was built with; a different set
    rebuilds it. A file lock serialises concurrent callers.
    """
    return venvs.ensure_stamped_venv(
        path or venv_path(),
        REQUIREMENTS,
        log=log,
        python=python,
        expect="bin/mlserver",
        note=" (about 2 minutes on first use)",
    )


def installed_versions(venv: Path | None = None) -> dict[str, str]:
    """Versions of the packages that matter, as installed in the environment."""
    venv = venv or venv_path()
    code = (
        "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
        "('mlserver', 'mlserver-sklearn', 'scikit-learn', 'numpy', 'fastapi', 'uvicorn')}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


# --- models ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One model to serve: what it is trained on and how it misbehaves (if at all)."""

    name: str = "iris"
    dataset: Dataset = "iris"
    shuffle_labels: bool = False
    delay_seconds: float = 0.0
    fail_every: int = 0
    fail_status: int = 503
    seed: int = 0
    version: str = "v1"

    @property
    def custom(self) -> bool:
        return self.delay_seconds > 0 or self.fail_every > 0


def write_model(venv: Path, model: ModelSpec, folder: Path) -> dict[str, float]:
    """Train ``model`` with the environment's scikit-learn; write it and its settings."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "dataset": model.dataset,
        "shuffle_labels": model.shuffle_labels,
        "seed": model.seed,
        "path": str(folder / "model.joblib"),
    }
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _TRAIN, json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    extra: dict[str, float | int] = {}
    implementation = "mlserver_sklearn.SKLearnModel"
    if model.custom:
        (folder / "behaviour_runtime.py").write_text(_RUNTIME)
        implementation = "behaviour_runtime.BehaviourModel"
        extra = {
            "delay_seconds": model.delay_seconds,
            "fail_every": model.fail_every,
            "fail_status": model.fail_status,
        }
    settings = {
        "name": model.name,
        "implementation": implementation,
        "parameters": {"uri": "./model.joblib", "version": model.version, "extra": extra},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    trained: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return trained


# --- the server ----------------------------------------------------------------------------


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def reap_orphans(root: Path = SERVERS_DIR) -> None:
    """Stop servers whose owning process died without stopping them, and remove the
    working directories such processes left (logs kept after failed tests)."""
    if not root.is_dir():
        return
    for pidfile in root.glob("*/server.json"):
        try:
            info = json.loads(pidfile.read_text())
        except (OSError, ValueError):
            continue
        if processes.pid_alive(int(info.get("owner", 0))):
            continue
        pid = int(info.get("pid") or 0)
        if pid:  # the server's process group, if any of it is left
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(pidfile.parent, ignore_errors=True)


@dataclass
class ModelServer:
    """An MLServer process serving ``models`` on ``host`` (loopback by default)."""

    models: Sequence[ModelSpec] = (ModelSpec(),)
    workdir: Path = field(
        default_factory=lambda: SERVERS_DIR / f"mlserver-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    host: str = "127.0.0.1"
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0
    venv: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mlserver.log"

    def prepare(self) -> Path:
        """Environment, trained models and settings; return the model repository.

        ``command()`` then starts the server from that directory (a test harness acting as
        a node can run it as a pod's container command).
        """
        self.venv = ensure_venv(self.venv)
        repo = self.workdir / "models"
        repo.mkdir(parents=True, exist_ok=True)
        for model in self.models:
            trained = write_model(self.venv, model, repo / model.name)
            self.accuracy[model.name] = trained["accuracy"]
        self.http_port = self.http_port or free_port(self.host)
        self.grpc_port = self.grpc_port or free_port(self.host)
        self.metrics_port = self.metrics_port or free_port(self.host)
        settings = {
            "debug": False,
            "host": self.host,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "metrics_endpoint": "/metrics",
            # Inference in the server process: no worker pool, fewer processes on 2 cores.
            "parallel_workers": 0,
        }
        (repo / "settings.json").write_text(json.dumps(settings, indent=2))
        return repo

    def command(self) -> list[str]:
        assert self.venv is not None, "prepare() first"
        return [str(self.venv / "bin" / "mlserver"), "start", str(self.workdir / "models")]

    def start(self, timeout: float = 120.0) -> ModelServer:
        if self.process is not None:
            return self
        reap_orphans(self.workdir.parent)
        repo = self.prepare()
        log(f"starting MLServer on {self.url} (metrics {self.metrics_url})")
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.command(),
                cwd=repo,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._write_state(pid=self.process.pid)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_state(self, pid: int | None) -> None:
        """Who owns the server (for reap_orphans); the pid is None once stopped."""
        state = {"pid": pid, "owner": os.getpid(), "url": self.url}
        with contextlib.suppress(OSError):
            (self.workdir / "server.json").write_text(json.dumps(state))

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        urls = [f"{self.url}/v2/health/ready"] + [
            f"{self.url}/v2/models/{m.name}/ready" for m in self.models
        ]
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"MLServer exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if all(_http_status(u) == 200 for u in urls):
                log(f"MLServer ready on {self.url}")
                return
            time.sleep(0.25)
        raise TimeoutError(f"MLServer not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the ports are free afterwards."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._write_state(pid=None)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The models the e2e tests use: the real one, and variants for failure tests.
TEST_MODELS = (
    ModelSpec(name="iris"),
    ModelSpec(name="iris-slow", delay_seconds=1.0),
    ModelSpec(name="iris-flaky", fail_every=2, fail_status=503),
    ModelSpec(name="iris-shuffled", shuffle_labels=True, seed=7),
)


@contextlib.contextmanager
def running_server(
    models: Sequence[ModelSpec] = TEST_MODELS, *, name: str | None = None
) -> Iterator[ModelServer]:
    server = ModelServer(models=models)
    if name:
        server.workdir = SERVERS_DIR / name
    server.start()
    try:
        yield server
    finally:
        server.remove()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.modelserver")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("venv", help="create the MLServer environment (idempotent)")
    sub.add_parser("serve", help="serve the test models until interrupted")
    args = parser.parse_args(argv)
    if args.command == "venv":
        venv = ensure_venv()
        print(json.dumps({"venv": str(venv), **installed_versions(venv)}))
        return 0
    with running_server(name=f"serve-{os.getpid()}") as server:
        print(
            json.dumps(
                {
                    "url": server.url,
                    "metrics": server.metrics_url,
                    "models": [m.name for m in server.models],
                }
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
