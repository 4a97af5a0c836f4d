"""The seal on a job-mode report: the run pod's termination message carries the sha256
of the report bytes it stored, and the operator accepts the report ConfigMap only when
its bytes hash to that digest.

Anyone who may write ConfigMaps in the monitor's namespace could otherwise replace the
report between the pod's write and the operator's read, and so steer the verdict and
the remediation it triggers. A pod's status is written by the kubelet: forging the
termination message takes ``pods/status`` rights, which the ``edit`` role lacks. The
pod must be controlled (controller ownerReference) by the run object the operator
created, identified by its uid, so a look-alike pod does not count either.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Where the run container writes the digest: the kubelet's default path, set explicitly.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
RUN_CONTAINER = "run"
REPORT_UNVERIFIED = "ReportUnverified"
_PREFIX = "modelmonitor-report-sha256:"
_MESSAGE = re.compile(r"^" + re.escape(_PREFIX) + r"([0-9a-f]{64})$")
# The kubelet keeps at most 4096 bytes of a termination message; ours is 91.
MAX_MESSAGE_BYTES = 4096


def report_digest(payload: str) -> str:
    """The sha256 (hex) of exactly the bytes stored under the report key (UTF-8)."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def termination_message(payload: str) -> str:
    """What the run pod writes to its termination message for report ``payload``."""
    return f"{_PREFIX}{report_digest(payload)}\n"


def parse_message(message: str) -> str | None:
    """The digest in a termination message, None when it carries none (or is malformed)."""
    if len(message.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        return None
    found = _MESSAGE.match(message.strip())
    return found.group(1) if found else None


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """True when ``obj``'s controller ownerReference is the object with ``owner_uid``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") is True and r.get("uid") == owner_uid for r in refs)


def sealed_digests(pods: Iterable[Mapping[str, Any]], owner_uid: str) -> set[str]:
    """The digests the run container wrote in pods controlled by ``owner_uid`` that
    terminated it with exit code 0 (a failed container's message proves nothing)."""
    found: set[str] = set()
    for pod in pods:
        if not owner_uid or not controlled_by(pod, owner_uid):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != RUN_CONTAINER:
                continue
            terminated = (status.get("state") or {}).get("terminated") or {}
            if terminated.get("exitCode") != 0:
                continue
            digest = parse_message(str(terminated.get("message") or ""))
            if digest is not None:
                found.add(digest)
    return found


@dataclass(frozen=True)
class SealCheck:
    ok: bool
    message: str = ""


def check_report(payload: str, pods: Iterable[Mapping[str, Any]], owner_uid: str) -> SealCheck:
    """Whether ``payload`` is what the run pod of ``owner_uid`` wrote, and why not."""
    digests = sealed_digests(pods, owner_uid)
    if not digests:
        return SealCheck(
            False,
            "no terminated run pod of the run carries the report's digest in its "
            "termination message; the report ConfigMap is not trusted",
        )
    if report_digest(payload) not in digests:
        return SealCheck(False, "the report ConfigMap does not match what the run pod wrote")
    return SealCheck(True)
