"""Virtual environments the harness builds once for a real part (MLServer, the
dask-kubernetes controller): pinned requirements, a stamp, a lock."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

STAMP = ".modelmonitor-requirements"


def is_built(venv: Path, requirements: Sequence[str]) -> bool:
    """True when ``venv`` was built with exactly ``requirements``."""
    stamp = venv / STAMP
    return stamp.is_file() and stamp.read_text() == _stamp_text(requirements)


def ensure_stamped_venv(
    venv: Path,
    requirements: Sequence[str],
    *,
    log: Callable[[str], None],
    python: str | None = None,
    expect: str | None = None,
    note: str = "",
) -> Path:
    """Create ``venv`` with ``requirements`` unless it was built with exactly them.

    Idempotent: a stamp file records the requirements it was built with, and a different
    set rebuilds it. A file lock beside it serialises concurrent callers (two test
    sessions, or ``make deps`` twice). ``expect`` names a file under the venv that must
    also exist (a console script) for a built venv to count.
    """
    if is_built(venv, requirements) and (expect is None or (venv / expect).exists()):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(venv, requirements) and (expect is None or (venv / expect).exists()):
            return venv
        started = time.monotonic()
        log(f"creating {venv} with {' '.join(requirements)}{note}")
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *requirements], check=True)
        (venv / STAMP).write_text(_stamp_text(requirements))
        log(f"{venv} ready in {time.monotonic() - started:.0f} s")
    return venv


def _stamp_text(requirements: Sequence[str]) -> str:
    return "\n".join(requirements) + "\n"
