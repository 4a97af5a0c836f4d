"""What the operator may ask of the cluster: the interfaces the Kubernetes adapter implements.

The engine, the sources and the actions see the API server only through these protocols
(:class:`ClusterApi` for the actions' path-level calls, :class:`ObjectLookup` for
reference checks), so each is unit-tested against a small fake of ours and the adapter
(:mod:`modelmonitor.adapters.kube`) is the one module that talks to the API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

# Marks on the objects the operator changes or creates.
ACTION_ANNOTATION = "modelmonitor.io/action-id"
MONITOR_LABEL = "modelmonitor.io/monitor"
INCIDENT_LABEL = "modelmonitor.io/incident"

PatchType = Literal["merge", "json", "strategic"]


class ApiError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class ClusterApi(Protocol):
    """Path-level access to the API server (paths like ``/apis/apps/v1/namespaces/...``)."""

    def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None on 404; ApiError otherwise."""

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        """The ``items`` of a collection, optionally filtered by a label selector."""

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        """Patch and return the object; ApiError(409/422) when a ``test`` op fails etc."""

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create in the collection ``path``; ApiError(409) when the name exists."""

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One decoded key of a Secret, or None when the Secret or key is absent."""


class ReferenceLookupError(Exception):
    """The lookup itself failed (API unreachable, forbidden): not the object's absence."""


class ObjectLookup(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Return the object, or ``None`` when it does not exist.

        Raise ReferenceLookupError when the lookup itself fails.
        """
