"""The control plane's binaries: the pinned versions (versions.env) and the cache that
build.sh fills once (``~/.cache/modelmonitor/testbin/<version>/``, or
``$MODELMONITOR_CACHE``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cluster.state import COMPONENTS, ClusterError

BUILD_SCRIPT = Path(__file__).with_name("build.sh")


def pinned_versions() -> dict[str, str]:
    """The pins of versions.env (K8S_VERSION, ETCD_VERSION, HELM_VERSION)."""
    pins = {}
    for line in BUILD_SCRIPT.with_name("versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


def cached_bin_dir() -> Path | None:
    """The binary cache build.sh fills (same rule for its location), if it exists yet."""
    root = os.environ.get("MODELMONITOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelmonitor"
    )
    path = Path(root) / "testbin" / pinned_versions()["K8S_VERSION"]
    return path if path.is_dir() else None


def ensure_binaries() -> Path:
    """Return the directory with the control plane binaries, building them once if needed.

    ``$MODELMONITOR_TESTBIN`` names a ready directory and skips the build script.
    """
    env = os.environ.get("MODELMONITOR_TESTBIN")
    if env:
        bin_dir = Path(env).expanduser().resolve()
    else:
        try:
            out = subprocess.run(
                ["bash", str(BUILD_SCRIPT)],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
        except subprocess.CalledProcessError as exc:
            raise ClusterError(
                f"{BUILD_SCRIPT} failed (exit {exc.returncode}); see its messages above"
            ) from exc
        lines = out.strip().splitlines()
        if not lines:
            raise ClusterError(f"{BUILD_SCRIPT} printed no binary directory")
        bin_dir = Path(lines[-1])
    missing = [c for c in COMPONENTS if not os.access(bin_dir / c, os.X_OK)]
    if missing:
        raise ClusterError(f"{bin_dir} lacks {', '.join(missing)}")
    return bin_dir
