"""A partitioned current window under an object-storage prefix, listed and streamed.

``spec.data.partitions.s3`` (or ``gcs``) names a bucket and a prefix. A run lists the
prefix with ListObjectsV2 (pages of 1,000 keys, each signed and sent through the
outbound fence like a reference's GET), keeps the data objects (``.parquet``, ``.csv``,
``.csv.gz``; names starting with ``.`` or ``_`` skipped), then reads them one at a time:
each object's body, capped at the fence's reference limit, goes to a temporary file that
the file readers stream chunk by chunk into the window's merged profile
(:func:`~modelmonitor.core.stats.partitions.profile_partition` and ``merge``, the same code
as a claim's partitions). Memory holds one object's body or one chunk, and one profile.

Everything the server says is bounded and checked before it is used: the listing's pages
(at most :data:`MAX_LIST_PAGE_BYTES` each, a page count derived from ``maxObjects``), the
number of data objects (``maxObjects``: more refuses the window, it is never cut), each
object's listed size and its body (the reference limit), and each listed key (it must lie
under the prefix and be a safe key, or the window is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from modelmonitor.adapters.files import DataError
from modelmonitor.adapters.files.readers import iter_datasets, read_columns
from modelmonitor.adapters.outbound import (
    FenceError,
    Outbound,
    Reply,
    ResponseTooLarge,
    describe,
    find_refusal,
)
from modelmonitor.core.cluster import ObjectLookup
from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.object_storage import (
    LIST_PAGE_KEYS,
    MAX_LIST_PAGE_BYTES,
    ListedObject,
    error_code,
    is_partition_key,
    list_url,
    object_key_problem,
    object_url,
    parse_list_page,
)
from modelmonitor.core.outbound import sanitize
from modelmonitor.core.spec.model import PartitionsSpec
from modelmonitor.core.stats.partitions import ProfileSchema, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.sources.object_auth import (
    CredentialsError,
    read_credentials,
    secret_values,
    signed,
)

PARTITIONS_UNAVAILABLE = "PartitionsUnavailable"
PARTITIONS_UNREADABLE = "PartitionsUnreadable"
PARTITIONS_TOO_LARGE = "PartitionsTooLarge"
PARTITIONS_NOT_FOUND = "PartitionsNotFound"
PARTITIONS_ACCESS_DENIED = "PartitionsAccessDenied"
OUTBOUND_REFUSED = "OutboundRefused"
#: Pages listed beyond those ``maxObjects`` data objects need: room for other objects
#: (``_SUCCESS``, manifests) beside the data, but not for a listing without end.
EXTRA_LIST_PAGES = 10


class PartitionsError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PrefixWindow:
    profile: ReferenceProfile
    objects: int
    bytes: int


def max_list_pages(max_objects: int) -> int:
    """How many ListObjectsV2 pages a window of at most ``max_objects`` may take."""
    return -(-max_objects // LIST_PAGE_KEYS) + EXTRA_LIST_PAGES


async def read_prefix_window(
    part: PartitionsSpec,
    features: Sequence[Feature],
    *,
    namespace: str,
    lookup: ObjectLookup,
    outbound: Outbound,
    limits: ReadLimits,
    timeout: float = 30.0,
) -> PrefixWindow:
    """The merged profile of the data objects under ``part``'s prefix.

    Raises :class:`PartitionsError` with a status reason; its message names the prefix or
    the object, never a credential.
    """
    stored = part.object_storage
    if stored is None:
        raise ValueError("not an object-storage window")
    shown = part.shown
    try:
        values = await read_credentials(lookup, namespace, stored, shown)
    except CredentialsError as exc:
        reason = PARTITIONS_UNAVAILABLE if exc.reason == exc.UNAVAILABLE else exc.reason
        raise PartitionsError(reason, str(exc)) from exc
    reader = _Reader(part, values, outbound.for_namespace(namespace), timeout)
    async with reader.fence.session() as session:
        reader.session = session
        objects = await reader.list_objects()
        return await reader.profile(objects, features, limits)


class _Reader:
    def __init__(
        self, part: PartitionsSpec, values: dict[str, str], fence: Outbound, timeout: float
    ) -> None:
        assert part.object_storage is not None
        self.part = part
        self.stored = part.object_storage
        self.values = values
        self.fence = fence
        self.timeout = timeout
        self.shown = part.shown
        self.session: aiohttp.ClientSession | None = None

    async def _get(self, url: str, cap: int, what: str) -> Reply:
        try:
            signed_url, headers = signed(self.stored, url, {}, self.values)
        except CredentialsError as exc:
            raise PartitionsError(exc.reason, str(exc)) from None
        assert self.session is not None
        try:
            reply = await self.fence.fetch(
                self.session,
                "GET",
                signed_url,
                cap=cap,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                encoded=True,
            )
        except (FenceError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = PARTITIONS_UNAVAILABLE
            if find_refusal(exc) is not None:
                reason = OUTBOUND_REFUSED
            elif isinstance(exc, ResponseTooLarge):
                reason = PARTITIONS_TOO_LARGE
            text = describe(exc, signed_url)
            for secret in secret_values(self.values):
                text = text.replace(secret, "***")
            raise PartitionsError(reason, f"{what}: {text}") from exc
        if reply.status >= 400:
            code = error_code(reply.body)
            detail = f"HTTP {reply.status} {code or sanitize(reply.reason, 80)}"
            if reply.status == 404:
                raise PartitionsError(PARTITIONS_NOT_FOUND, f"{what}: {detail}")
            if reply.status in (401, 403):
                raise PartitionsError(
                    PARTITIONS_ACCESS_DENIED,
                    f"{what}: {detail}; check the credentials in Secret "
                    f"{self.stored.secret_name} and the bucket's permissions (s3:ListBucket "
                    "and s3:GetObject)",
                )
            raise PartitionsError(PARTITIONS_UNAVAILABLE, f"{what}: {detail}")
        return reply

    async def list_objects(self) -> list[ListedObject]:
        """The data objects under the prefix, in key order, within every cap."""
        stored, prefix = self.stored, self.stored.key
        max_objects = self.part.max_objects
        cap = self.fence.limits.reference
        found: list[ListedObject] = []
        token: str | None = None
        pages = max_list_pages(max_objects)
        for _ in range(pages):
            address = list_url(
                "gcs" if stored.provider == "gcs" else "s3",
                bucket=stored.bucket,
                prefix=prefix,
                endpoint=stored.endpoint,
                region=stored.region,
                path_style=stored.path_style,
                continuation=token,
            )
            reply = await self._get(address.url, MAX_LIST_PAGE_BYTES, f"{self.shown} (listing)")
            try:
                page = parse_list_page(reply.body)
            except ValueError as exc:
                raise PartitionsError(
                    PARTITIONS_UNREADABLE, f"{self.shown}: {sanitize(str(exc), 200)}"
                ) from None
            for obj in page.objects:
                if not obj.key.startswith(prefix) or object_key_problem(obj.key) is not None:
                    raise PartitionsError(
                        PARTITIONS_UNREADABLE,
                        f"{self.shown}: the server listed {sanitize(obj.key, 120)!r}, which is "
                        "not a safe key under the prefix; nothing was read",
                    )
                if not is_partition_key(obj.key):
                    continue
                if obj.size > cap:
                    raise PartitionsError(
                        PARTITIONS_TOO_LARGE,
                        f"{self.shown}: {sanitize(obj.key, 120)} is {obj.size:,} bytes, over "
                        f"the {cap:,}-byte limit of one object (the reference limit)",
                    )
                found.append(obj)
                if len(found) > max_objects:
                    raise PartitionsError(
                        PARTITIONS_TOO_LARGE,
                        f"{self.shown}: more than {max_objects:,} data objects "
                        "(spec.data.partitions.maxObjects); nothing was read",
                    )
            token = page.next_token
            if token is None:
                break
        else:
            raise PartitionsError(
                PARTITIONS_TOO_LARGE,
                f"{self.shown}: the listing did not end within {pages:,} pages of "
                f"{LIST_PAGE_KEYS:,} keys (spec.data.partitions.maxObjects {max_objects:,}); "
                "nothing was read",
            )
        if not found:
            raise PartitionsError(
                PARTITIONS_UNREADABLE,
                f"{self.shown}: no data object (.parquet, .csv, .csv.gz; names starting "
                "with '.' or '_' are skipped)",
            )
        return sorted(found, key=lambda o: o.key)

    async def profile(
        self, objects: list[ListedObject], features: Sequence[Feature], limits: ReadLimits
    ) -> PrefixWindow:
        """Each object fetched to a temporary file and folded into one profile."""
        stored = self.stored
        cap = self.fence.limits.reference
        profile: ReferenceProfile | None = None
        schema: ProfileSchema | None = None
        total = 0
        with tempfile.TemporaryDirectory(prefix="modelmonitor-window-") as tmp:
            for i, obj in enumerate(objects):
                address = object_url(
                    "gcs" if stored.provider == "gcs" else "s3",
                    bucket=stored.bucket,
                    key=obj.key,
                    endpoint=stored.endpoint,
                    region=stored.region,
                    path_style=stored.path_style,
                )
                name = sanitize(obj.key, 120)
                reply = await self._get(address.url, cap, f"{self.shown}: {name}")
                total += len(reply.body)
                # the key's own ending tells the format (.csv.gz counts as csv)
                path = Path(tmp) / f"object-{i}{_suffix(obj.key)}"
                try:
                    await asyncio.to_thread(path.write_bytes, reply.body)
                except OSError as exc:  # /tmp full (its emptyDir's sizeLimit) or read-only
                    raise PartitionsError(
                        PARTITIONS_UNAVAILABLE,
                        f"{self.shown}: {name}: cannot write it to {tmp}: {exc.strerror}",
                    ) from exc
                del reply
                try:
                    if schema is None:
                        present = await asyncio.to_thread(_present, path, features)
                        if not present:
                            raise PartitionsError(
                                PARTITIONS_UNREADABLE,
                                f"{self.shown}: {name} has none of the reference's features",
                            )
                        schema = ProfileSchema(tuple(present))
                    part = await asyncio.to_thread(_profile_file, path, schema, limits)
                except DataError as exc:
                    raise PartitionsError(
                        PARTITIONS_UNREADABLE, f"{self.shown}: {name}: {exc.reason}"
                    ) from exc
                finally:
                    with contextlib.suppress(OSError):
                        path.unlink()
                profile = part if profile is None else profile.merge(part)
        assert profile is not None  # objects is never empty
        return PrefixWindow(profile, len(objects), total)


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1].lower()
    return ".csv.gz" if name.endswith(".csv.gz") else Path(name).suffix


def _present(path: Path, features: Sequence[Feature]) -> list[Feature]:
    have = {f.name for f in read_columns(path)}
    return [f for f in features if f.name in have]


def _profile_file(path: Path, schema: ProfileSchema, limits: ReadLimits) -> ReferenceProfile:
    chunks = iter_datasets(path, features=schema.features, limits=limits)
    return profile_stream(chunks, schema)
