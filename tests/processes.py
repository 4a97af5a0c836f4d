"""The server processes a test session starts: tied to it, stopped, and reaped after it.

Prometheus, Alertmanager, the Kafka broker and the S3 server each run as a child of the
test process with :func:`die_with_parent` (``PR_SET_PDEATHSIG``: the kernel sends the
child SIGKILL when its parent thread dies), and keep their files in a state directory
named ``<owner pid>-<name>`` under their own root, holding a pid file. The signal is
not enough on its own: it is tied to the thread that started the child, it is lost if
the child resets it, and it leaves the state directory behind. So each harness calls
:func:`reap_orphans` before starting a server: a state directory whose owner is gone is
removed, and the process its pid file names is killed if it still runs, but only when
its command line names that directory (a pid the system gave to someone else since is
left alone). Flux's controllers (tests/flux.py) keep their files in the test's own
temporary directory and rely on the signal alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """``preexec_fn`` of a server: SIGKILL when the test process (its parent) dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie, dead but not waited for, is not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it runs
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def cmdline(pid: int) -> str:
    """``pid``'s command line with spaces between the arguments ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def state_dir(root: Path, name: str) -> Path:
    """This process's state directory for the server ``name`` (see :func:`reap_orphans`)."""
    return root / f"{os.getpid()}-{name}"


def reap_orphans(root: Path, pid_file: str) -> list[int]:
    """Remove the state directories under ``root`` whose owner process is gone, killing
    the server each one's ``pid_file`` names if its command line names the directory.

    Returns the pids killed. Entries not named ``<pid>-...`` are left alone.
    """
    killed: list[int] = []
    if not root.is_dir():
        return killed
    for state in root.iterdir():
        owner = state.name.split("-", 1)[0]
        if not owner.isdigit() or pid_alive(int(owner)):
            continue
        with contextlib.suppress(OSError, ValueError):
            pid = int((state / pid_file).read_text())
            if pid_alive(pid) and str(state) in cmdline(pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        shutil.rmtree(state, ignore_errors=True)
    return killed


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
