"""Container probes: running one (HTTP, TCP, exec) and a probe's schedule and verdict."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Prober:
    """One probe of one container: its schedule, thresholds and current verdict."""

    def __init__(self, spec: Mapping[str, Any], kind: str, *, initial: bool) -> None:
        self.spec = spec
        self.kind = kind
        self.period = float(spec.get("periodSeconds", 10))
        self.timeout = float(spec.get("timeoutSeconds", 1))
        self.success_threshold = int(spec.get("successThreshold", 1))
        self.failure_threshold = int(spec.get("failureThreshold", 3))
        self.delay = float(spec.get("initialDelaySeconds", 0))
        self.ok = initial
        self._next = 0.0
        self._successes = 0
        self._failures = 0
        self.last_error = ""

    def reset(self, started: float) -> None:
        self._next = started + self.delay
        self._successes = self._failures = 0

    def due(self, now: float) -> bool:
        return now >= self._next

    @property
    def failed(self) -> bool:
        """failureThreshold failures in a row (a startup probe starts not ok, not failed)."""
        return self._failures >= self.failure_threshold

    def record(self, now: float, error: str | None) -> bool:
        """Record a result; True when the verdict changed."""
        self._next = now + self.period
        before = self.ok
        if error is None:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.success_threshold:
                self.ok = True
        else:
            self.last_error = error
            self._failures += 1
            self._successes = 0
            if self._failures >= self.failure_threshold:
                self.ok = False
        return self.ok != before


def run_probe(
    spec: Mapping[str, Any],
    *,
    pod_ip: str,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    cwd: Path | None,
) -> str | None:
    """Run one probe; None on success, else what failed."""
    timeout = float(spec.get("timeoutSeconds", 1))

    def port_of(value: Any) -> int:
        return ports[value] if isinstance(value, str) and not value.isdigit() else int(value)

    try:
        if "httpGet" in spec:
            get = spec["httpGet"]
            host = get.get("host") or pod_ip
            connection: http.client.HTTPConnection
            if get.get("scheme", "HTTP").upper() == "HTTPS":
                connection = http.client.HTTPSConnection(
                    host,
                    port_of(get["port"]),
                    timeout=timeout,
                    context=ssl._create_unverified_context(),  # a kubelet does not verify either
                )
            else:
                connection = http.client.HTTPConnection(host, port_of(get["port"]), timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                connection.request("GET", get.get("path", "/"), headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"
        if "tcpSocket" in spec:
            tcp = spec["tcpSocket"]
            with socket.create_connection(
                (tcp.get("host") or pod_ip, port_of(tcp["port"])), timeout=timeout
            ):
                return None
        if "exec" in spec:
            done = subprocess.run(
                spec["exec"]["command"],
                env=dict(env),
                cwd=cwd,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            return None if done.returncode == 0 else f"exec probe exited {done.returncode}"
    except (
        OSError,
        KeyError,
        ValueError,
        subprocess.TimeoutExpired,
        http.client.HTTPException,
    ) as exc:
        return f"probe failed: {exc}"
    return f"probe type {sorted(spec)} is not supported by the node agent"
