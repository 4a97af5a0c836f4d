"""One loader per ``spec.reference`` source, in a registry keyed by that source's name.

Each loader fetches its reference and asks its source cheaply whether it changed since
``cached`` (the entry the cache holds): the ConfigMap's ``resourceVersion``, the URL's
ETag/Last-Modified, the file's size and mtime, the spec's own digest for inline rows.
It returns ``cached`` itself when nothing changed, a new :class:`LoadedReference`
otherwise, and raises :class:`ReferenceLoadError` with a status reason when it cannot.

A new source: a class with ``key`` (the spec's name for the source) and ``load``, added
to :data:`LOADERS` (docs/sources.md, "How to add a source").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp

from modelmonitor.adapters.files import ReadLimits
from modelmonitor.adapters.outbound import (
    FenceError,
    Outbound,
    Reply,
    ResponseTooLarge,
    describe,
    find_refusal,
)
from modelmonitor.core.cluster import ObjectLookup, ReferenceLookupError
from modelmonitor.core.object_storage import error_code, object_url
from modelmonitor.core.outbound import redact_url, sanitize
from modelmonitor.core.spec import ObjectStorageSpec, ReferenceSpec
from modelmonitor.core.spec.parse_object_storage import OBJECT_STORAGE_SOURCES
from modelmonitor.core.volume_paths import inside_volume
from modelmonitor.sources.object_auth import CredentialsError, read_credentials, signed
from modelmonitor.sources.reference.build import (
    ColumnPlan,
    LoadedReference,
    ReferenceLoadError,
    format_from_name,
    inline_reference,
    parse_reference_bytes,
    read_reference_file,
)
from modelmonitor.sources.registry import Registry


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets: the reference to load and the means to load it."""

    namespace: str
    reference: ReferenceSpec
    plan: ColumnPlan
    digest: str  # of the reference spec and the plan: part of every version string
    cached: LoadedReference | None
    lookup: ObjectLookup
    max_bytes: int
    http_timeout: float
    volume_root: Path | None = None  # where a pvc reference's claim is mounted (job mode)
    outbound: Outbound = field(default_factory=Outbound)
    limits: ReadLimits = field(default_factory=ReadLimits)  # what the content may decode to

    async def parse(
        self, payload: bytes, *, name_hint: str, version: str, source: str
    ) -> LoadedReference:
        """Fetched bytes to a reference, in ``spec.reference.format`` (in a thread)."""
        return await asyncio.to_thread(
            parse_reference_bytes,
            payload,
            fmt=self.reference.format,
            name_hint=name_hint,
            plan=self.plan,
            version=version,
            source=source,
            limits=self.limits,
        )


class Loader(Protocol):
    @property
    def key(self) -> str:
        """The ``ReferenceSpec.source`` this loader reads."""
        ...

    async def load(self, request: LoadRequest) -> LoadedReference: ...


class InlineLoader:
    """Rows in the spec: changed only when the spec changes."""

    key = "inline"

    async def load(self, request: LoadRequest) -> LoadedReference:
        version = f"inline:{request.digest}"
        if request.cached is not None and request.cached.version == version:
            return request.cached
        return await asyncio.to_thread(
            inline_reference,
            list(request.reference.inline_rows),
            request.plan,
            version=version,
        )


class ConfigMapLoader:
    """A key of a ConfigMap in the monitor's namespace (``data`` or ``binaryData``)."""

    key = "configMap"

    async def load(self, request: LoadRequest) -> LoadedReference:
        ref, namespace = request.reference, request.namespace
        name, key = ref.config_map_name or "", ref.config_map_key or ""
        source = f"ConfigMap {namespace}/{name} key {key}"
        try:
            cm = await asyncio.to_thread(request.lookup.get, "ConfigMap", namespace, name)
        except ReferenceLookupError as exc:
            raise ReferenceLoadError("ReferenceUnavailable", f"{source}: {exc}") from exc
        if cm is None:
            raise ReferenceLoadError("ReferenceNotFound", f"{source}: the ConfigMap does not exist")
        version = f"cm:{cm.get('metadata', {}).get('resourceVersion')}:{request.digest}"
        if request.cached is not None and request.cached.version == version:
            return request.cached
        if key in (cm.get("data") or {}):
            payload = str(cm["data"][key]).encode()
        elif key in (cm.get("binaryData") or {}):
            payload = base64.b64decode(cm["binaryData"][key])
        else:
            raise ReferenceLoadError("ReferenceNotFound", f"{source}: no such key")
        return await request.parse(payload, name_hint=key, version=version, source=source)


class UrlLoader:
    """An http(s) URL: size-limited, timed out, re-validated with a conditional GET."""

    key = "url"

    async def load(self, request: LoadRequest) -> LoadedReference:
        url = request.reference.url or ""
        shown = redact_url(url)  # userinfo and query never reach status or logs
        headers = _conditional(request.cached, "url")
        reply = await _get(request, url, headers, shown)
        if reply.status == 304 and request.cached is not None:
            return request.cached
        if reply.status == 404:
            raise ReferenceLoadError("ReferenceNotFound", f"{shown}: HTTP 404")
        if reply.status >= 400:
            raise ReferenceLoadError(
                "ReferenceUnavailable", f"{shown}: HTTP {reply.status} {sanitize(reply.reason, 80)}"
            )
        name_hint = shown.split("?", 1)[0].rsplit("/", 1)[-1]
        return await _parse_reply(request, reply, "url", name_hint, shown)


def _conditional(cached: LoadedReference | None, prefix: str) -> dict[str, str]:
    """The validator of ``cached`` (loaded by the loader of ``prefix``) as request headers."""
    if cached is None or not cached.version.startswith(f"{prefix}:"):
        return {}
    validator = cached.version.split(":", 2)[2].rsplit("|", 1)[0]
    if validator.startswith("etag="):
        return {"If-None-Match": validator[5:]}
    if validator.startswith("lm="):
        return {"If-Modified-Since": validator[3:]}
    return {}


async def _get(
    request: LoadRequest,
    url: str,
    headers: Mapping[str, str],
    shown: str,
    *,
    encoded: bool = False,
    secrets: tuple[str, ...] = (),
) -> Reply:
    """One GET of ``url`` through the fence, on the monitor's namespace's buffer share."""
    fence = request.outbound.for_namespace(request.namespace)  # its buffer share
    try:
        async with fence.session() as session:
            return await fence.fetch(
                session,
                "GET",
                url,
                cap=request.max_bytes,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=request.http_timeout),
                encoded=encoded,
            )
    except (FenceError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = "ReferenceUnavailable"
        if find_refusal(exc) is not None:
            reason = "OutboundRefused"
        elif isinstance(exc, ResponseTooLarge):
            reason = "ReferenceTooLarge"
        text = describe(exc, url)
        for secret in secrets:
            text = text.replace(secret, "***")
        raise ReferenceLoadError(reason, f"{shown}: {text}") from exc


async def _parse_reply(
    request: LoadRequest, reply: Reply, prefix: str, name_hint: str, shown: str
) -> LoadedReference:
    """A 2xx answer to a reference, unless its bytes are those already profiled."""
    cached = request.cached
    etag = reply.headers.get("ETag")
    modified = reply.headers.get("Last-Modified")
    validator = f"etag={etag}" if etag else f"lm={modified}" if modified else "none"
    payload = reply.body
    version = f"{prefix}:{request.digest}:{validator}|{hashlib.sha256(payload).hexdigest()[:16]}"
    if cached is not None and cached.version.rsplit("|", 1)[-1] == version.rsplit("|", 1)[-1]:
        return LoadedReference(cached.profile, cached.rows, version, cached.source)
    return await request.parse(payload, name_hint=name_hint, version=version, source=shown)


class ObjectStorageLoader:
    """One object in S3 (or S3-compatible), GCS (its S3-interoperable XML API, HMAC
    keys) or Azure Blob: credentials read from the monitor's Secret at each load, the
    request signed here and sent through the fence like a URL's, re-validated with the
    object's ETag (``If-None-Match``): an unchanged object is neither read nor profiled
    again."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def load(self, request: LoadRequest) -> LoadedReference:
        stored = request.reference.object_storage
        if stored is None:  # the parser sets it for these sources
            raise ReferenceLoadError("ReferenceUnreadable", f"spec.reference.{self.key} is unset")
        address = object_url(
            stored.provider,
            bucket=stored.bucket,
            key=stored.key,
            endpoint=stored.endpoint,
            region=stored.region,
            path_style=stored.path_style,
            account=stored.account,
        )
        shown = address.shown
        values = await _read_credentials(request, stored, shown)
        url, headers = _signed(stored, address.url, _conditional(request.cached, self.key), values)
        reply = await _get(
            request,
            url,
            headers,
            shown,
            encoded=True,
            secrets=tuple(v for v in values.values() if len(v) >= 4),
        )
        if reply.status == 304 and request.cached is not None:
            return request.cached
        if reply.status >= 400:
            code = error_code(reply.body)
            detail = f"HTTP {reply.status} {code or sanitize(reply.reason, 80)}"
            if reply.status == 404:
                raise ReferenceLoadError("ReferenceNotFound", f"{shown}: {detail}")
            if reply.status in (401, 403):
                raise ReferenceLoadError(
                    "ReferenceAccessDenied",
                    f"{shown}: {detail}; check the credentials in Secret "
                    f"{request.namespace}/{stored.secret_name} and the object's permissions",
                )
            raise ReferenceLoadError("ReferenceUnavailable", f"{shown}: {detail}")
        return await _parse_reply(request, reply, self.key, stored.key.rsplit("/", 1)[-1], shown)


async def _read_credentials(
    request: LoadRequest, stored: ObjectStorageSpec, shown: str
) -> dict[str, str]:
    """Each credential of ``stored`` as text, read from the monitor's own namespace."""
    try:
        return await read_credentials(request.lookup, request.namespace, stored, shown)
    except CredentialsError as exc:
        reason = "ReferenceUnavailable" if exc.reason == exc.UNAVAILABLE else exc.reason
        raise ReferenceLoadError(reason, str(exc)) from exc


def _signed(
    stored: ObjectStorageSpec, url: str, headers: dict[str, str], values: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The URL and headers of the signed GET (a SAS token goes into the query)."""
    try:
        return signed(stored, url, headers, values)
    except CredentialsError as exc:
        raise ReferenceLoadError(exc.reason, str(exc)) from None


class PvcLoader:
    """A file on a mounted volume (``pvc: {claimName, path}``; job mode mounts it).

    ``path`` is read inside the claim's mount (``request.volume_root``), never outside:
    a ``..`` is refused, and so is a symbolic link on the volume that leads elsewhere
    (the pod's token, another mount). Messages name the path as the spec wrote it.
    """

    key = "pvc"

    async def load(self, request: LoadRequest) -> LoadedReference:
        ref = request.reference
        shown = f"pvc {ref.claim_name}: {ref.path}"
        path = _inside_volume(request.volume_root, ref.path or "", shown)
        try:
            st = path.stat()
        except OSError as exc:
            raise ReferenceLoadError("ReferenceNotFound", f"{shown}: {exc.strerror}") from exc
        version = f"file:{request.digest}:{st.st_size}:{st.st_mtime_ns}"
        if request.cached is not None and request.cached.version == version:
            return request.cached
        if st.st_size > request.max_bytes:
            raise ReferenceLoadError(
                "ReferenceTooLarge", f"{shown}: {st.st_size} bytes is over the limit"
            )
        fmt = request.reference.format
        if fmt == "profile" or (fmt == "auto" and path.suffix.lower() == ".json"):
            payload = await asyncio.to_thread(path.read_bytes)
            return parse_reference_bytes(
                payload,
                fmt="profile",
                name_hint=path.name,
                plan=request.plan,
                version=version,
                source=shown,
                limits=request.limits,
            )
        if fmt == "auto":
            fmt = format_from_name(path.name)
        return await asyncio.to_thread(
            read_reference_file,
            path,
            fmt,
            request.plan,
            version=version,
            source=shown,
            limits=request.limits,
        )


def _inside_volume(root: Path | None, written: str, shown: str) -> Path:
    """The file ``written`` names inside the volume mounted at ``root``, links resolved."""
    if root is None:
        raise ReferenceLoadError(
            "ReferenceUnavailable",
            f"{shown}: a pvc reference is read by job mode's run pod, which mounts the claim",
        )
    try:
        relative = inside_volume(written)
    except ValueError as exc:
        raise ReferenceLoadError("ReferenceUnreadable", str(exc)) from exc
    base = root.resolve()
    try:
        resolved = (base / relative).resolve(strict=True)
    except OSError as exc:
        raise ReferenceLoadError("ReferenceNotFound", f"{shown}: {exc.strerror}") from exc
    except RuntimeError as exc:  # a symbolic link loop
        raise ReferenceLoadError("ReferenceUnreadable", f"{shown}: {exc}") from exc
    if not resolved.is_relative_to(base):
        raise ReferenceLoadError(
            "ReferenceUnreadable", f"{shown}: a symbolic link leads outside the volume"
        )
    if not resolved.is_file():
        raise ReferenceLoadError("ReferenceNotFound", f"{shown}: not a file")
    return resolved


#: Every ``spec.reference`` source, by ``ReferenceSpec.source``.
LOADERS: Registry[Loader] = Registry(
    "reference source",
    [
        ConfigMapLoader(),
        UrlLoader(),
        PvcLoader(),
        InlineLoader(),
        *(ObjectStorageLoader(key) for key in OBJECT_STORAGE_SOURCES),
    ],
)
