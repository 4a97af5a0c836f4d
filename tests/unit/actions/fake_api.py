"""An in-memory stand-in for the API server's path interface, for the actions' unit tests.

It keeps objects by path, bumps ``metadata.resourceVersion`` on every write, and applies
merge patches (RFC 7386) and JSON patches (RFC 6902: add, replace, remove, test) the way
the API server does. The e2e tests run the same executors against a real apiserver.
:func:`request` is a request as the policy plans it, for the executors to carry out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.cluster import ApiError, PatchType
from modelmonitor.core.incident import ActionRequest


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc: Any, ops: list[Mapping[str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _pointer(str(op["path"]))
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise ApiError(422, f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if kind == "replace" and isinstance(parent, dict) and last not in parent:
                raise ApiError(422, f"replace: missing {op['path']}")
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            elif last in parent:
                del parent[last]
            else:
                raise ApiError(422, f"remove: missing {op['path']}")
        else:
            raise ApiError(422, f"unsupported op {kind}")
    return doc


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeApi:
    """Objects by path; collections are the path prefixes (``.../replicasets``)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str, str], str] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], ApiError] = {}  # (method, path) -> error to raise
        self._version = 100

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)

    def put(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(obj))
        self._bump(stored)
        self.objects[path] = stored
        return stored

    def _check(self, method: str, path: str) -> None:
        self.calls.append((method, path))
        error = self.fail.get((method, path))
        if error is not None:
            raise error

    def get(self, path: str) -> dict[str, Any] | None:
        self._check("GET", path)
        obj = self.objects.get(path)
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        self._check("LIST", path)
        prefix = path.rstrip("/") + "/"
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(self.objects.items())
            if key.startswith(prefix)
            and "/" not in key[len(prefix) :]
            and _matches((obj.get("metadata") or {}).get("labels") or {}, label_selector)
        ]

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        self._check("PATCH", path)
        obj = self.objects.get(path)
        if obj is None:
            raise ApiError(404, f"{path} not found")
        if patch_type == "json":
            updated = json_patch(obj, list(body))
        else:
            expected = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if expected is not None and expected != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "the object has been modified")
            updated = merge_patch(obj, body)
        self._bump(updated)
        self.objects[path] = updated
        return copy.deepcopy(updated)

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check("POST", path)
        name = (body.get("metadata") or {}).get("name")
        if not name:
            raise ApiError(422, "metadata.name is required")
        key = f"{path.rstrip('/')}/{name}"
        if key in self.objects:
            raise ApiError(409, f"{name} already exists")
        return copy.deepcopy(self.put(key, body))

    def patched(self) -> list[str]:
        """The paths patched so far, in order."""
        return [path for method, path in self.calls if method == "PATCH"]

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        self._check("SECRET", f"{namespace}/{name}/{key}")
        return self.secrets.get((namespace, name, key))


def request(action: str, **fields: Any) -> ActionRequest:
    """A request of monitor ml/m for ``action`` in incident "i"; ``fields`` override."""
    values: dict[str, Any] = {
        "id": f"i-{action}-1",
        "action": action,
        "namespace": "ml",
        "monitor": "m",
        "monitor_uid": "u",
        "incident": "i",
        "trigger": "slo",
        "reason": "slow",
    }
    return ActionRequest(**{**values, **fields})
