"""Pod IP addresses: a /24 block per agent of a CIDR routed to the loopback interface."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

DEFAULT_POD_CIDR = "10.244.0.0/16"
LOOPBACK_POD_CIDR = "127.1.0.0/16"


class PodNetwork:
    """Pod IPs from a /24 block of a locally routed CIDR, claimed with a lock file.

    The lock (under the system temp directory) keeps agents of concurrent test sessions
    on the same machine in separate blocks; it is released when the agent's process ends.
    ``routable`` is False for loopback addresses, which EndpointSlices may not contain.
    """

    def __init__(self, block: ipaddress.IPv4Network, lock: IO[str], *, routable: bool) -> None:
        self.block = block
        self.routable = routable
        self._lock = lock
        self._free = [str(ip) for ip in list(block.hosts())[1:]]  # .1 is the node's
        self._used: set[str] = set()
        self._mutex = threading.Lock()

    @classmethod
    def claim(cls, cidr: str | None = None) -> PodNetwork:
        """A block of ``cidr`` (default $MODELMONITOR_POD_CIDR or 10.244.0.0/16).

        The CIDR is routed to ``lo`` if it is not yet (needs CAP_NET_ADMIN); if that is
        impossible, or the CIDR is ``loopback``, the block comes from 127.1.0.0/16.
        """
        wanted = cidr or os.environ.get("MODELMONITOR_POD_CIDR") or DEFAULT_POD_CIDR
        if wanted != "loopback":
            network = ipaddress.IPv4Network(wanted)
            problem = ensure_local_route(network)
            if problem is None:
                return cls._claim_block(network, routable=not network.is_loopback)
            log.warning(
                "pod network %s unavailable (%s); pods get loopback addresses, which "
                "EndpointSlices cannot hold",
                network,
                problem,
            )
        return cls._claim_block(ipaddress.IPv4Network(LOOPBACK_POD_CIDR), routable=False)

    @classmethod
    def _claim_block(cls, network: ipaddress.IPv4Network, *, routable: bool) -> PodNetwork:
        lock_dir = Path(tempfile.gettempdir()) / "modelmonitor-podnet"
        lock_dir.mkdir(exist_ok=True)
        for index, block in enumerate(network.subnets(new_prefix=24)):
            if index == 0:
                continue
            handle = open(lock_dir / f"{block.network_address}.lock", "w")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return cls(block, handle, routable=routable)
        raise RuntimeError(f"every /24 block of {network} is claimed by another agent")

    @property
    def gateway(self) -> str:
        return str(self.block.network_address + 1)

    def allocate(self) -> str:
        """The least recently released free address."""
        with self._mutex:
            if not self._free:
                raise RuntimeError(f"pod network {self.block} is exhausted")
            ip = self._free.pop(0)
            self._used.add(ip)
            return ip

    def release(self, ip: str) -> None:
        with self._mutex:
            if ip in self._used:
                self._used.discard(ip)
                self._free.append(ip)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def ensure_local_route(network: ipaddress.IPv4Network) -> str | None:
    """Route ``network`` to the loopback interface; None when done, else why not."""
    if network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        return None
    ip_tool = shutil.which("ip")
    if ip_tool is None:
        return "the `ip` command is missing"

    def routes() -> list[str]:
        out = subprocess.run(
            [ip_tool, "-4", "route", "show", "table", "all"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.splitlines()

    route_types = {"local", "broadcast", "unicast", "anycast", "multicast", "blackhole"}
    route_types |= {"unreachable", "prohibit", "throw", "nat"}
    for line in routes():
        words = line.split()
        if len(words) >= 4 and words[:2] == ["local", str(network)] and "lo" in words:
            return None
        if words and words[0] in route_types:
            words = words[1:]
        if not words:
            continue
        destination = words[0]
        with contextlib.suppress(ValueError):
            if destination != "default" and ipaddress.IPv4Network(
                destination, strict=False
            ).overlaps(network):
                return f"it overlaps the existing route {line.strip()!r}"
    added = subprocess.run(
        [ip_tool, "route", "add", "local", str(network), "dev", "lo", "table", "local"],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode == 0 or "File exists" in added.stderr:
        return None
    return f"`ip route add local {network} dev lo` failed: {added.stderr.strip()}"
