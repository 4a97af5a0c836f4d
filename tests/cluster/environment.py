"""The environment of a container process, resolved as a kubelet does: ``env`` and
``envFrom`` with values, fieldRefs, ConfigMap and Secret keys, and $(VAR) expansion."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.cluster.api import ApiError, KubeApi


class ConfigError(RuntimeError):
    """A container's configuration cannot be resolved (CreateContainerConfigError)."""


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, ``$$`` escapes, others stay."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The value a fieldRef's ``fieldPath`` names, for env and downwardAPI volumes."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ConfigError(f"fieldRef {path!r} is not supported by the node agent")


class RefReader:
    """Reads ConfigMap and Secret keys for env, once per object per container start."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            plural = "secrets" if kind == "Secret" else "configmaps"
            try:
                obj = self._api.get(f"/api/v1/namespaces/{self._namespace}/{plural}/{name}")
            except ApiError as exc:
                if exc.status != 404:
                    raise ConfigError(f"reading {kind} {name}: {exc}") from exc
                self._cache[key] = None
            else:
                raw = obj.get("data") or {}
                if kind == "Secret":
                    raw = {k: base64.b64decode(v).decode() for k, v in raw.items()}
                self._cache[key] = dict(raw)
        return self._cache[key]

    def claim_path(self, claim: str) -> Path:
        """The local directory of a PersistentVolumeClaim: its bound PV's hostPath."""
        try:
            pvc = self._api.get(
                f"/api/v1/namespaces/{self._namespace}/persistentvolumeclaims/{claim}"
            )
            volume = (pvc.get("spec") or {}).get("volumeName")
            if not volume or (pvc.get("status") or {}).get("phase") != "Bound":
                raise ConfigError(f"persistentVolumeClaim {claim!r} is not bound")
            pv = self._api.get(f"/api/v1/persistentvolumes/{volume}")
        except ApiError as exc:
            raise ConfigError(f"reading persistentVolumeClaim {claim}: {exc}") from exc
        host = (pv.get("spec") or {}).get("hostPath") or (pv.get("spec") or {}).get("local")
        if not host or not host.get("path"):
            raise ConfigError(f"volume {volume!r} is not a hostPath or local volume")
        return Path(host["path"])

    def value(self, kind: str, ref: Mapping[str, Any]) -> str | None:
        data = self.data(kind, ref["name"])
        if data is not None and ref["key"] in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return None
        missing = "not found" if data is None else f"has no key {ref['key']!r}"
        raise ConfigError(f"{kind} {ref['name']!r} {missing}")


def container_env(
    api: KubeApi,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    base: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
) -> dict[str, str]:
    """``base`` plus the container's envFrom and env, resolved as a kubelet does."""
    namespace = pod["metadata"]["namespace"]
    refs = RefReader(api, namespace)
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = refs.data(kind, ref["name"])
            if data is None and not ref.get("optional"):
                raise ConfigError(f"{kind} {ref['name']!r} not found")
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        value: str | None
        if source is None:
            value = expand_vars(var.get("value", ""), env)
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source:
            value = refs.value("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = refs.value("ConfigMap", source["configMapKeyRef"])
        else:
            raise ConfigError(f"env {var['name']}: {sorted(source)} is not supported")
        if value is not None:
            env[var["name"]] = value
    return env
