"""What the operator may ask of the cluster: the interfaces the Kubernetes adapter implements.

The engine, the sources and the actions see the API server only through these protocols
(:class:`ClusterApi` for the actions' path-level calls, :class:`ObjectLookup` for
reference checks), so each is unit-tested against a small fake of ours and the adapter
(:mod:`modelmonitor.adapters.kube`) is the one module that talks to the API server.

Paths are built only by :func:`resource_path` from checked segments; the adapter sends
only paths :func:`checked_path` lets through, and executors get a
:class:`NamespacedApi` that reaches the monitor's namespace alone.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from modelmonitor.core.names import key_problem, label_problem, subdomain_problem

# Marks on the objects the operator changes or creates.
ACTION_ANNOTATION = "modelmonitor.io/action-id"
MONITOR_LABEL = "modelmonitor.io/monitor"
INCIDENT_LABEL = "modelmonitor.io/incident"
# The field manager of every write an action makes (?fieldManager= on PATCH and POST).
FIELD_MANAGER = "modelmonitor"

PatchType = Literal["merge", "json", "strategic"]


class ApiError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class PathError(ApiError, ValueError):
    """An API path that would not name exactly the object meant: refused, never sent.

    An :class:`ApiError` without a status, so every caller that handles a failed call
    (the executors report it as a FAILED result) handles a refused path the same way.
    """

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


_API_PREFIX = re.compile(r"/api/v1|/apis/[a-z0-9]([-a-z0-9.]*[a-z0-9])?/v[0-9]+[a-z0-9]*")
_PLURAL = re.compile(r"[a-z][a-z0-9]*")


def _segment(value: str, what: str, problem: str | None) -> str:
    if problem is not None:
        raise PathError(f"{what} {problem}")
    return urllib.parse.quote(value, safe="")


def resource_path(
    api_prefix: str,
    namespace: str,
    plural: str,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``{api_prefix}/namespaces/{namespace}/{plural}[/{name}[/{subresource}]]``.

    The one way an API path is built: every segment is checked (the namespace a DNS-1123
    label, the name a DNS-1123 subdomain, the group, version, plural and subresource
    plain lower-case words) and quoted, so a name such as ``../../kube-system/secrets/x``
    raises :class:`PathError` instead of becoming a path into another namespace.
    """
    if _API_PREFIX.fullmatch(api_prefix) is None:
        raise PathError(f"api prefix {api_prefix!r} is not /api/v1 or /apis/<group>/<version>")
    parts = [api_prefix, "namespaces", _segment(namespace, "namespace", label_problem(namespace))]
    bad_plural = None if _PLURAL.fullmatch(plural) else f"{plural!r} is not a resource name"
    parts.append(_segment(plural, "resource", bad_plural))
    if name is not None:
        parts.append(_segment(name, "name", subdomain_problem(name)))
        if subresource is not None:
            bad = None if _PLURAL.fullmatch(subresource) else f"{subresource!r} is not a word"
            parts.append(_segment(subresource, "subresource", bad))
    elif subresource is not None:
        raise PathError("a subresource needs an object name")
    return "/".join(parts)


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a canonical API path (None when it is).

    A defence in depth for the adapter: whatever built the path, a ``.`` or ``..``
    segment, an empty segment (``//``), a percent-encoded ``/``, ``.`` or ``%``, a
    backslash or a ``#`` could make the HTTP layer or the API server resolve it to another object.
    """
    route, _, _query = path.partition("?")
    if not route.startswith("/"):
        return "does not start with '/'"
    if any(c in "\\#" or ord(c) < 0x21 or ord(c) > 0x7E for c in route):
        return "contains a backslash, a '#', a space, a control or a non-ASCII character"
    lowered = route.lower()
    for encoded in ("%2f", "%2e", "%5c", "%25", "%00"):
        if encoded in lowered:
            return f"contains the percent-encoded {encoded!r}"
    for segment in route[1:].split("/"):
        if segment in ("", ".", ".."):
            return f"has the segment {segment!r}" if segment else "has an empty segment"
    return None


def checked_path(path: str) -> str:
    """``path`` itself, or PathError when it is not canonical (never sent, whoever built it)."""
    problem = path_problem(path)
    if problem is not None:
        raise PathError(f"refusing the API path {path!r}: it {problem}")
    return path


def namespace_of(path: str) -> str | None:
    """The namespace a namespaced API path is in (None for a cluster-scoped path)."""
    parts = path.partition("?")[0].split("/")
    # /api/v1/namespaces/{ns}/... or /apis/{group}/{version}/namespaces/{ns}/...
    index = {"api": 3, "apis": 4}.get(parts[1] if len(parts) > 1 else "", 0)
    if index and len(parts) > index + 1 and parts[index] == "namespaces":
        return parts[index + 1]
    return None


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


class NamespacedApi:
    """A :class:`ClusterApi` that reaches only ``namespace``: given to executors per request.

    The executors act for one monitor, so nothing they do may touch another namespace.
    Whatever path they build, this refuses (raises :class:`PathError`, never calls the
    API) a path that is not canonical or not in ``namespace``, and a Secret elsewhere.
    """

    def __init__(self, api: ClusterApi, namespace: str) -> None:
        problem = label_problem(namespace)
        if problem is not None:
            raise PathError(f"namespace {problem}")
        self._api = api
        self.namespace = namespace

    def _checked(self, path: str) -> str:
        found = namespace_of(checked_path(path))
        if found != self.namespace:
            where = f"namespace {found!r}" if found else "no namespace"
            raise PathError(
                f"refusing the API path {path!r}: it is in {where}, "
                f"not the monitor's namespace {self.namespace!r}"
            )
        return path

    def get(self, path: str) -> dict[str, Any] | None:
        checked = self._checked(path)
        return self._api.get(checked)

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        checked = self._checked(path)
        return self._api.list(checked, label_selector)

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        checked = self._checked(path)
        return self._api.patch(checked, body, patch_type=patch_type)

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        checked = self._checked(path)
        return self._api.create(checked, body)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        self._checked(resource_path("/api/v1", namespace, "secrets", name))
        problem = key_problem(key)
        if problem is not None:
            raise PathError(f"secret key {problem}")
        return self._api.secret_value(namespace, name, key)
