"""The handle e2e tests get for a cluster: its kubeconfig plus kubectl and helm runners."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class CommandError(AssertionError):
    """A kubectl/helm command failed; the message carries its output."""


@dataclass(frozen=True)
class KubeCluster:
    """A reachable cluster: the local control plane or one named by MODELMONITOR_KUBECONFIG.

    ``bin_dir`` holds helm (and kubectl when it was built); None for an external
    cluster, whose tools come from PATH. ``name`` is the local cluster's name,
    None for an external one. ``managed`` says whether the test session started
    it (and so stops it).
    """

    kubeconfig: Path
    server: str
    bin_dir: Path | None
    name: str | None = None
    managed: bool = False

    # -- tools ------------------------------------------------------------------------------
    def tool(self, name: str) -> str:
        """Absolute path of ``name``: from ``bin_dir`` when present there, else from PATH."""
        if self.bin_dir is not None and os.access(self.bin_dir / name, os.X_OK):
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is neither in {self.bin_dir} nor on PATH")
        return found

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process that should talk to this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        tool: str,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``tool`` (kubectl, helm, ...) against this cluster; raise CommandError on failure."""
        argv = [self.tool(tool), *args]
        if tool in ("kubectl", "helm"):
            argv.insert(1, f"--kubeconfig={self.kubeconfig}")
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if check and proc.returncode != 0:
            raise CommandError(
                f"{' '.join(argv)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, input=input, check=check, timeout=timeout)

    def helm(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, input=input, check=check, timeout=timeout)

    # -- conveniences -----------------------------------------------------------------------
    def wait_established(self, *crds: str, timeout: float = 60.0) -> None:
        """Wait until each CRD (``name.group``) is Established.

        Polled rather than ``kubectl wait --for=condition=Established``: that command fails
        at once, instead of waiting, when it reads a CRD whose ``status.conditions`` is
        still null, which a large CRD shows for a moment after it is created.
        """

        def established(name: str) -> bool:
            status = self.get("crd", name).get("status") or {}
            return any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )

        for name in crds:
            wait_for(partial(established, name), timeout=timeout, what=f"crd/{name} Established")

    def get(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(
        self, manifests: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` of a dict, a list of dicts, or YAML text."""
        if isinstance(manifests, str):
            text = manifests
        elif isinstance(manifests, Mapping):
            text = yaml.safe_dump(dict(manifests))
        else:
            text = yaml.safe_dump_all([dict(m) for m in manifests])
        return self.kubectl("apply", "-f", "-", *extra, input=text)


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something other than None/False; return that."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except (CommandError, subprocess.TimeoutExpired) as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what} not met within {timeout:.0f}s{detail}")
        time.sleep(interval)
