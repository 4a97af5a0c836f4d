"""A pod's volumes as local files and directories, and the paths its containers mount."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.cluster.environment import ConfigError, RefReader, field_value


def _write_files(
    directory: Path,
    data: Mapping[str, str],
    items: Sequence[Mapping[str, Any]] | None,
    mode: int,
    *,
    optional: bool = False,
) -> None:
    """Files of a ConfigMap or Secret volume: every key, or just ``items`` (key -> path)."""
    chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items or []]
    if items is None:
        chosen = [(key, key, mode) for key in data]
    for key, relative, file_mode in chosen:
        if key not in data:
            if optional:
                continue
            raise ConfigError(f"key {key!r} not found")
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[key])
        path.chmod(file_mode)


def materialize_volumes(
    pod: Mapping[str, Any],
    root: Path,
    refs: RefReader,
    token: Callable[[], str],
    *,
    pod_ip: str,
    host_ip: str,
) -> dict[str, Path]:
    """Write the pod's volumes under ``root``; return volume name -> local path.

    Supported: emptyDir, configMap, secret, downwardAPI (fieldRef), hostPath (used in
    place), persistentVolumeClaim bound to a hostPath or local PersistentVolume (its
    directory, used in place), and projected volumes of those plus serviceAccountToken
    (the pod's token).
    """

    def source_files(directory: Path, kind: str, source: Mapping[str, Any]) -> None:
        if kind in ("configMap", "secret"):
            name = source.get("name") or source.get("secretName", "")
            data = refs.data("ConfigMap" if kind == "configMap" else "Secret", name)
            if data is None:
                if source.get("optional"):
                    return
                raise ConfigError(f"{kind} {name!r} not found")
            mode = int(source.get("defaultMode", 0o644))
            _write_files(
                directory, data, source.get("items"), mode, optional=bool(source.get("optional"))
            )
        elif kind == "downwardAPI":
            values = {
                item["path"]: field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
                for item in source.get("items") or []
                if "fieldRef" in item
            }
            _write_files(directory, values, None, int(source.get("defaultMode", 0o644)))
        elif kind == "serviceAccountToken":
            path = directory / source.get("path", "token")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(token())
            path.chmod(0o600)
        else:
            raise ConfigError(f"volume source {kind!r} is not supported by the node agent")

    local: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "hostPath" in volume:
            local[name] = Path(volume["hostPath"]["path"])
            continue
        if "persistentVolumeClaim" in volume:
            local[name] = refs.claim_path(volume["persistentVolumeClaim"]["claimName"])
            continue
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        local[name] = directory
        if "emptyDir" in volume:
            continue
        if "projected" in volume:
            for projection in volume["projected"].get("sources") or []:
                for kind, source in projection.items():
                    source_files(directory, kind, source)
            continue
        kinds = [k for k in volume if k != "name"]
        if not kinds:
            raise ConfigError(f"volume {name!r} has no source")
        source_files(directory, kinds[0], volume[kinds[0]])
    return local


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> dict[str, Path]:
    """mountPath -> local path for a container's volumeMounts."""
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise ConfigError(f"volumeMount {mount['name']!r}: no such volume")
        path = volumes[mount["name"]]
        if mount.get("subPath"):
            path = path / mount["subPath"]
        mounts[mount["mountPath"].rstrip("/") or "/"] = path
    return mounts


def rewrite_mount_paths(text: str, mounts: Mapping[str, Path]) -> str:
    """Replace each path under a mountPath in ``text`` with the local path."""
    if not mounts:
        return text
    ordered = sorted(mounts, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(re.escape(m) for m in ordered) + r")(?=/|$|[^\w.-])"
    )
    return pattern.sub(lambda match: str(mounts[match.group(1)]), text)
