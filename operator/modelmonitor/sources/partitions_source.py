"""The ``partitions`` source: a partitioned current window, streamed into one profile.

On a volume (job mode), described here; or under an object-storage prefix (inline or
job mode: :mod:`modelmonitor.sources.object_partitions`).

``spec.data.partitions: {claimName, path}`` names a folder or a glob inside a
PersistentVolumeClaim that job mode's run pod mounts read-only. The run lists the data
files (:func:`~modelmonitor.adapters.files.partitions.resolve_partitions`), reads them one
chunk at a time and folds each into one merged profile
(:func:`~modelmonitor.core.stats.partitions.profile_stream`): the same merge code a
distributed engine would reduce with. Memory holds one chunk and one profile, however many
files; the size caps (``REFERENCE_MAX_*``, the pod's settings) apply to each file.

With ``spec.schedule.mode: dask`` the files are listed and checked the same way, then
profiled on the monitor's Dask scheduler (``Clients.dask``, one task per file, the same
merge): the scheduler's workers mount the same claim at the same path.

Every file must stay inside the volume: ``..`` is refused by the spec, and a symbolic
link on the volume that leads elsewhere refuses the whole window (no file is read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from modelmonitor.adapters.files import DataError
from modelmonitor.adapters.files.partitions import (
    iter_partitions,
    present_features,
    resolve_partitions,
)
from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.report import Problem
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.spec.model import PartitionsSpec
from modelmonitor.core.stats.partitions import ProfileSchema, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.volume_paths import inside_volume
from modelmonitor.sources.base import CurrentData, DaskProfiler, Gathered, RunContext
from modelmonitor.sources.object_partitions import PartitionsError as PrefixError
from modelmonitor.sources.object_partitions import read_prefix_window

PARTITIONS_UNAVAILABLE = "PartitionsUnavailable"
PARTITIONS_UNREADABLE = "PartitionsUnreadable"
ENGINE_NOT_INSTALLED = "EngineNotInstalled"
ENGINE_FAILED = "EngineFailed"
ENGINE_UNAVAILABLE = "EngineUnavailable"


class PartitionsError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PartitionsSource:
    key = "partitions"
    supplies_rows = True

    def configured(self, spec: MonitorSpec) -> bool:
        return spec.partitions is not None

    async def gather(self, ctx: RunContext) -> Gathered:
        part = ctx.spec.partitions
        if ctx.reference is None or part is None:
            return Gathered()
        if part.object_storage is not None:
            return await _gather_prefix(ctx, part, ctx.reference.features)
        shown = f"partitions {part.claim_name}: {part.path}"
        root = ctx.clients.window_root
        if root is None:
            message = f"{shown}: read by job mode's run pod, which mounts the claim"
            return _failed(PARTITIONS_UNAVAILABLE, message)
        engine: Engine = _stream
        details: dict[str, object] = {}
        if ctx.spec.schedule.mode == "dask":
            if ctx.clients.dask is None or ctx.spec.schedule.dask is None:
                message = f"{shown}: mode dask needs the dask extra in the run pod's image"
                return _failed(ENGINE_NOT_INSTALLED, message)
            address = ctx.spec.schedule.dask.scheduler or ctx.clients.dask_scheduler
            if address is None:
                message = f"{shown}: the run's Dask cluster has no scheduler address"
                return _failed(ENGINE_UNAVAILABLE, message)
            engine = _on_dask(ctx.clients.dask, address, details)
        try:
            profile, files = await asyncio.to_thread(
                read_window,
                Path(root),
                part.path,
                ctx.reference.features,
                ctx.clients.window_limits,
                shown,
                engine,
            )
        except PartitionsError as exc:
            return _failed(exc.reason, str(exc))
        return Gathered(
            current=CurrentData(None, profile=profile),
            details={"partitions": {"files": files, "rows": profile.n_rows, **details}},
        )


async def _gather_prefix(
    ctx: RunContext, part: PartitionsSpec, features: list[Feature]
) -> Gathered:
    """The window under an object-storage prefix (inline or job mode)."""
    try:
        window = await read_prefix_window(
            part,
            features,
            namespace=ctx.namespace,
            lookup=ctx.clients.lookup,
            outbound=ctx.clients.outbound,
            limits=ctx.clients.window_limits,
        )
    except PrefixError as exc:
        return _failed(exc.reason, str(exc))
    profile = window.profile
    return Gathered(
        current=CurrentData(None, profile=profile),
        details={
            "partitions": {"objects": window.objects, "bytes": window.bytes, "rows": profile.n_rows}
        },
    )


Engine = Callable[[Sequence[Path], ProfileSchema, ReadLimits], ReferenceProfile]


def _stream(paths: Sequence[Path], schema: ProfileSchema, limits: ReadLimits) -> ReferenceProfile:
    """Single-pod streaming: one chunk of one file in memory at a time."""
    return profile_stream(iter_partitions(paths, schema.features, limits=limits), schema)


def _on_dask(dask: DaskProfiler, scheduler: str, details: dict[str, object]) -> Engine:
    def run(paths: Sequence[Path], schema: ProfileSchema, limits: ReadLimits) -> ReferenceProfile:
        try:
            profile, workers = dask(scheduler, paths, schema, limits)
        except (DataError, PartitionsError):
            raise
        except Exception as exc:  # the engine's own failure: reported, never a crash
            raise PartitionsError(
                ENGINE_FAILED, f"the partition step on {scheduler}: {type(exc).__name__}: {exc}"
            ) from exc
        details.update(engine="dask", workers=workers)
        return profile

    return run


def _failed(reason: str, message: str) -> Gathered:
    return Gathered(current=CurrentData(None), problems=(Problem(reason, message),))


def read_window(
    root: Path,
    written: str,
    features: list[Feature],
    limits: ReadLimits,
    shown: str,
    engine: Engine | None = None,
) -> tuple[ReferenceProfile, int]:
    """The merged profile of the files ``written`` names inside ``root``, and their count."""
    try:
        relative = inside_volume(written)
    except ValueError as exc:
        raise PartitionsError(PARTITIONS_UNREADABLE, str(exc)) from exc
    base = root.resolve()
    try:
        paths = resolve_partitions(base / relative)
    except DataError as exc:
        raise PartitionsError(PARTITIONS_UNREADABLE, f"{shown}: {exc.reason}") from exc
    for p in paths:
        try:
            resolved = p.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise PartitionsError(PARTITIONS_UNREADABLE, f"{shown}: {exc}") from exc
        if not resolved.is_relative_to(base):
            where = p.relative_to(base) if p.is_relative_to(base) else p.name
            raise PartitionsError(
                PARTITIONS_UNREADABLE,
                f"{shown}: {where} is a symbolic link that leads outside the volume",
            )
    try:
        present = present_features(paths, features)
        if not present:
            raise PartitionsError(
                PARTITIONS_UNREADABLE,
                f"{shown}: {paths[0].relative_to(base)} has none of the reference's features",
            )
        schema = ProfileSchema(tuple(present))
        profile = (engine or _stream)(paths, schema, limits)
    except DataError as exc:
        where = Path(exc.path)
        name = where.relative_to(base) if where.is_relative_to(base) else where.name
        raise PartitionsError(PARTITIONS_UNREADABLE, f"{shown}: {name}: {exc.reason}") from exc
    return profile, len(paths)
