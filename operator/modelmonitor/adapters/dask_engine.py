"""The partition step on a Dask cluster: one task per file, small results back, one merge.

``profile_on_dask(client, paths, schema, limits)`` submits
:func:`profile_file` for every data file to a :class:`distributed.Client`; each worker
reads its file chunk by chunk (the size caps apply to each file, as in single-pod
streaming) and returns the file's mergeable profile as JSON (kilobytes, whatever the
file's size). The caller folds the profiles with
:func:`~modelmonitor.core.stats.partitions.merge` as they complete: the same merge code
job mode's streaming uses, so the verdict does not depend on where the files were read
(exact parts equal exactly; sketches within their stated rank error, docs/statistics.md).

Rows never travel: the workers must see the files at the same paths as the caller (the
claim mounted at the same path on the workers, docs/sources.md). The engine is an optional
extra (``pip install modelmonitor[dask]``); :func:`available` says whether it is
installed, and nothing here imports ``distributed`` until a cluster is asked for.

Security: a Dask client deserializes what the scheduler sends (pickle), so a client is a
process that trusts its scheduler. The operator is never one: a monitor's scheduler is
reached only from the monitor's own run pod (job mode's pod, with the monitor
namespace's ServiceAccount), after the address passed the outbound fence
(:func:`fenced_address`).
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelmonitor.adapters.files.readers import iter_datasets
from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.stats.partitions import ProfileSchema, merge, profile_stream
from modelmonitor.core.stats.profile import ReferenceProfile

#: How long connecting to a scheduler may take before the run reports it unreachable.
CONNECT_TIMEOUT_SECONDS = 30.0


def available() -> bool:
    """True when the ``dask`` extra (``distributed``) is installed."""
    return importlib.util.find_spec("distributed") is not None


def _distributed() -> Any:
    """The ``distributed`` package, imported when a cluster is asked for (the extra)."""
    return importlib.import_module("distributed")


class EngineError(Exception):
    """The engine could not profile the window (unreachable scheduler, a task failed)."""


@dataclass(frozen=True)
class EngineRun:
    """What a distributed partition step did: the merged profile and where it ran."""

    profile: ReferenceProfile
    files: int
    workers: int


def profile_file(
    path: str,
    features: Sequence[Feature],
    limits: ReadLimits | None,
    exact_limit: int | None,
    sketch_k: int,
    category_cap: int | None,
) -> str:
    """One file's profile as JSON (runs on a worker). Everything it needs travels in its
    arguments, so any worker with the package and the file can run it."""
    schema = ProfileSchema(
        tuple(features), exact_limit=exact_limit, sketch_k=sketch_k, category_cap=category_cap
    )
    tables = iter_datasets(Path(path), features=list(features), limits=limits)
    return profile_stream(tables, schema).to_json(sketched=True)


def profile_on_dask(
    client: Any,
    paths: Sequence[Path],
    schema: ProfileSchema,
    limits: ReadLimits | None = None,
) -> EngineRun:
    """Map :func:`profile_file` over ``paths`` on ``client``'s cluster and merge.

    The driver holds one returned profile and the running merge at a time (profiles are
    folded as their tasks complete); a failed task (an unreadable file, a size cap) is
    raised as itself, the first one to fail, after the others are cancelled.
    """
    futures = client.map(
        profile_file,
        [str(p) for p in paths],
        features=list(schema.features),
        limits=limits,
        exact_limit=schema.exact_limit,
        sketch_k=schema.sketch_k,
        category_cap=schema.category_cap,
        pure=False,
    )
    try:
        profile = merge(_completed(_distributed().as_completed(futures, loop=client.loop)), schema)
    except BaseException:
        client.cancel(futures)
        raise
    workers = len(client.scheduler_info().get("workers") or {})
    return EngineRun(profile=profile, files=len(paths), workers=workers)


def _completed(done: Any) -> Iterator[ReferenceProfile]:
    for future in done:
        yield ReferenceProfile.from_json(future.result())


@contextmanager
def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Iterator[Any]:
    """A client of the scheduler at ``address`` (``tcp://host:port``), closed on exit."""
    try:
        client = _distributed().Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EngineError(f"cannot reach the Dask scheduler {address}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A client of a new cluster of ``workers`` local processes (one thread each)."""
    distributed = _distributed()
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def parse_scheduler(address: str) -> tuple[str, int]:
    """``tcp://host:port`` as (host, port); ValueError for anything else."""
    parts = urlsplit(address)
    if parts.scheme != "tcp" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"a Dask scheduler is named tcp://host:port, got {address!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"a Dask scheduler is named tcp://host:port, got {address!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"a Dask scheduler is named tcp://host:port, got {address!r}") from exc
    return parts.hostname, port or 8786


def fenced_address(address: str, check: Callable[[str, int], None]) -> str:
    """``address`` resolved to one IP the fence allows (``check`` raises otherwise).

    The client then connects to that IP, so the name cannot resolve to another address
    between the check and the connection.
    """
    host, port = parse_scheduler(address)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EngineError(f"cannot resolve the Dask scheduler {host}: {exc}") from exc
    refused: Exception | None = None
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        try:
            check(ip, port)
        except OSError as exc:
            refused = refused or exc
            continue
        return f"tcp://[{ip}]:{port}" if family == socket.AF_INET6 else f"tcp://{ip}:{port}"
    raise EngineError(f"the Dask scheduler {address}: {refused}")
