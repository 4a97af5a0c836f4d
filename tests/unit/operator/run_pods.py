"""A finished run pod as the kubelet reports it: its run container's termination
message seals the report it stored (core/report_seal.py). Shared by the fakes of the
job-mode unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelmonitor.core.report_seal import termination_message


def sealed_pod(owner_uid: str, payload: str, *, exit_code: int = 0) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "message": termination_message(payload)}
    return {
        "metadata": {"ownerReferences": [{"uid": owner_uid, "controller": True}]},
        "status": {"containerStatuses": [{"name": "run", "state": {"terminated": terminated}}]},
    }


class RunPodsAndStatus:
    """The Pod list and status write of the job runner's Kubernetes calls, for fakes:
    ``pods`` are what a list returns, ``status`` collects what the runner wrote."""

    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.pod_lists: list[Mapping[str, str]] = []
        self.status: dict[str, Any] = {}

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str], *, limit: int = 0
    ) -> list[dict[str, Any]]:
        assert kind == "Pod"
        assert limit > 0
        self.pod_lists.append(labels)
        return self.pods[:limit]

    def update_monitor_status(
        self, namespace: str, name: str, compute: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        self.status.update(compute({}))
