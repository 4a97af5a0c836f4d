"""The harness's process helpers (tests/processes.py), on real processes: what a killed
session left is reaped, and nothing else is touched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import processes

pytestmark = pytest.mark.timeout(60)

PID_FILE = "server.pid"


def _sleeper(*args: str) -> subprocess.Popen[bytes]:
    """A stand-in server: a Python process that sleeps, ``args`` on its command line."""
    code = "import time; time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code, *args])


def _dead_pid() -> int:
    """The pid of a process that has exited and been waited for."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _state(root: Path, owner: int, name: str, server: int | None) -> Path:
    state = root / f"{owner}-{name}"
    state.mkdir(parents=True)
    if server is not None:
        (state / PID_FILE).write_text(str(server))
    return state


def test_a_dead_sessions_server_is_killed_and_its_state_removed(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    owner = _dead_pid()
    state = tmp_path / f"{owner}-prom"
    server = _sleeper(str(state))
    started.append(server)
    _state(tmp_path, owner, "prom", server.pid)
    assert processes.reap_orphans(tmp_path, PID_FILE) == [server.pid]
    assert server.wait(timeout=10) == -signal.SIGKILL
    assert not state.exists()


def test_a_live_sessions_server_and_state_are_left_alone(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    owner = _sleeper()  # a session still running
    started.append(owner)
    state = tmp_path / f"{owner.pid}-kafka"
    server = _sleeper(str(state))
    started.append(server)
    _state(tmp_path, owner.pid, "kafka", server.pid)
    assert processes.reap_orphans(tmp_path, PID_FILE) == []
    assert server.poll() is None
    assert (state / PID_FILE).is_file()


def test_a_pid_now_someone_elses_is_not_killed(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """The pid file names a running process whose command line does not name the state
    directory (the pid was given to another process since): only the state goes."""
    stranger = _sleeper("unrelated")
    started.append(stranger)
    state = _state(tmp_path, _dead_pid(), "s3", stranger.pid)
    assert processes.reap_orphans(tmp_path, PID_FILE) == []
    assert stranger.poll() is None
    assert not state.exists()


def test_other_entries_and_unreadable_pid_files_do_not_stop_the_reaping(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a session's state")
    (tmp_path / "cache").mkdir()
    garbled = _state(tmp_path, _dead_pid(), "garbled", None)
    (garbled / PID_FILE).write_text("not a pid")
    _state(tmp_path, _dead_pid(), "gone", _dead_pid())
    _state(tmp_path, _dead_pid(), "no-pid-file", None)
    assert processes.reap_orphans(tmp_path, PID_FILE) == []
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["cache"]
    assert (tmp_path / "README").is_file()
    assert processes.reap_orphans(tmp_path / "absent", PID_FILE) == []


def test_a_zombie_is_not_alive(started: list[subprocess.Popen[bytes]]) -> None:
    proc = _sleeper()
    started.append(proc)
    assert processes.pid_alive(proc.pid)
    proc.kill()
    deadline = time.monotonic() + 10
    while processes.pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.pid_alive(proc.pid), "exited but not waited for: a zombie"
    proc.wait()
    assert not processes.pid_alive(proc.pid)
    assert not processes.pid_alive(0)


def test_a_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """die_with_parent: the parent exits without stopping its child, the kernel kills it."""
    code = (
        "import subprocess, sys, time\n"
        "from tests import processes\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=processes.die_with_parent)\n"
        "print(child.pid, flush=True)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=30
    )
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while processes.pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.pid_alive(child)


def test_stop_process_terminates_then_kills(started: list[subprocess.Popen[bytes]]) -> None:
    polite = _sleeper()
    started.append(polite)
    processes.stop_process(polite, timeout=10)
    assert polite.returncode == -signal.SIGTERM
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    started.append(stubborn)
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here
    processes.stop_process(stubborn, timeout=0.5)
    assert stubborn.returncode == -signal.SIGKILL
    processes.stop_process(None)
    processes.stop_process(stubborn)  # already stopped: nothing to do
