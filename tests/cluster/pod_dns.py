"""A pod's /etc/resolv.conf and /etc/hosts, as a kubelet writes them, and the mount
namespace that shows them to the pod's processes only.

The files follow the kubelet's rules: dnsPolicy ClusterFirst (the default) gets the
cluster DNS with the search path ``<ns>.svc.cluster.local svc.cluster.local
cluster.local`` and ``ndots:5``, Default gets the host's resolv.conf, None only the
pod's ``dnsConfig`` (which the other policies merge in too); a hostNetwork pod keeps the
host's files unless its policy is ClusterFirstWithHostNet. /etc/hosts maps the pod's
hostname to its IP, plus its ``hostAliases``.

A container process sees them through bind mounts in a mount namespace of its own
(``unshare --mount --uts``; the mounts vanish with its last process), which also gives
it the pod's hostname, as a container's own UTS namespace would: the nearest thing to a
container's root file system here. :func:`isolation_problem` tells whether this works
on the machine; the agent falls back to the host's files with a warning when not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.cluster.service_table import CLUSTER_DOMAIN

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
# Runs in the new mount namespace: bind the pod's files, then become the container.
# $4 is a count of further (file, mount point) pairs to bind; a missing mount point is
# created as a container runtime would in the image's root (its directory must exist).
_SCRIPT = (
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts'
    ' && printf %s "$3" > /proc/sys/kernel/hostname && n=$4 && shift 4'
    ' && while [ "$n" -gt 0 ]; do { [ -e "$2" ] || : > "$2"; } && mount --bind "$1" "$2"'
    ' || exit 126; shift 2; n=$((n - 1)); done && exec "$@"'
)
MAX_HOSTNAME = 63


def _host_resolv(path: Path = Path("/etc/resolv.conf")) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def resolv_conf(
    pod: Mapping[str, Any], nameserver: str, host_resolv: str | None = None
) -> str | None:
    """The pod's resolv.conf, or None when it keeps the host's (hostNetwork, Default)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if host_network and policy not in ("ClusterFirstWithHostNet", "None"):
        return None
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = [nameserver]
        searches = [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options = {"ndots": "5"}
    elif policy == "Default":
        text = _host_resolv() if host_resolv is None else host_resolv
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                servers.append(words[1])
            elif words and words[0] in ("search", "domain"):
                searches = words[1:]
            elif words and words[0] == "options":
                for word in words[1:]:
                    key, _, value = word.partition(":")
                    options[key] = value or None
    config = spec.get("dnsConfig") or {}
    servers += [s for s in config.get("nameservers") or [] if s not in servers]
    searches += [s for s in config.get("searches") or [] if s not in searches]
    for option in config.get("options") or []:
        options[option["name"]] = option.get("value")
    lines = [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if searches:
        lines.append("search " + " ".join(searches[:MAX_SEARCHES]))
    if options:
        words = [k if v is None else f"{k}:{v}" for k, v in options.items()]
        lines.append("options " + " ".join(words))
    return "\n".join(lines) + "\n"


def pod_hostname(pod: Mapping[str, Any]) -> str:
    """``spec.hostname``, else the pod's name cut to 63 characters, as a kubelet does."""
    spec = pod.get("spec") or {}
    name = str(spec.get("hostname") or (pod.get("metadata") or {}).get("name", ""))
    return name[:MAX_HOSTNAME].rstrip("-.") or "pod"


def etc_hosts(pod: Mapping[str, Any], pod_ip: str) -> str:
    """The pod's /etc/hosts: localhost, its hostname (and FQDN with a subdomain), aliases."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    hostname = pod_hostname(pod)
    names = [hostname]
    if spec.get("subdomain"):
        namespace = meta.get("namespace", "default")
        names.insert(0, f"{hostname}.{spec['subdomain']}.{namespace}.svc.{CLUSTER_DOMAIN}")
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{' '.join(names)}",
    ]
    for alias in spec.get("hostAliases") or []:
        if alias.get("ip") and alias.get("hostnames"):
            lines.append(f"{alias['ip']}\t{' '.join(alias['hostnames'])}")
    return "\n".join(lines) + "\n"


def isolated_argv(
    argv: Sequence[str],
    resolv: Path,
    hosts: Path,
    *,
    hostname: str = "pod",
    path: str | None = None,
    cwd: Path | None = None,
    binds: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    """``argv`` run in mount and UTS namespaces of its own, with ``resolv`` and ``hosts``
    bound over /etc's, each (file, path) of ``binds`` bound at its path (a container's
    termination message file), and ``hostname`` as its host name. unshare and sh exec, so
    the container keeps the process's pid.

    A program that is not there raises FileNotFoundError here, as starting it directly
    would (with ``path``, the container's PATH, and ``cwd``), instead of a shell's exit 127.
    """
    program = str(argv[0]) if argv else ""
    if "/" in program:
        found = os.access(Path(cwd or ".") / program, os.X_OK)
    else:
        found = bool(program) and shutil.which(program, path=path) is not None
    if not found:
        raise FileNotFoundError(f"[Errno 2] No such file or directory: {program!r}")
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare,
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _SCRIPT,
        "sh",
        str(resolv),
        str(hosts),
        hostname,
        str(len(binds)),
        *(word for source, target in binds for word in (str(source), target)),
        *argv,
    ]


def isolation_problem(scratch: Path) -> str | None:
    """None when a process can get its own /etc/resolv.conf here, else why not."""
    if shutil.which("unshare") is None:
        return "the `unshare` command is missing"
    scratch.mkdir(parents=True, exist_ok=True)
    probe = scratch / "resolv.conf"
    probe.write_text("# probe\n")
    hosts = scratch / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    argv = isolated_argv(["cat", "/etc/resolv.conf"], probe, hosts, hostname="probe")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if out.returncode != 0 or out.stdout != "# probe\n":
        return f"`unshare --mount --uts` with a bind mount failed: {out.stderr.strip()[:200]}"
    return None
