"""Parse ``spec.data.partitions``: a claim and a path in it, or a prefix in object storage.

Exactly one of ``claimName`` + ``path`` (job mode mounts the claim) or ``s3``/``gcs`` (a
bucket and a prefix, with the same endpoint and Secret fields as a reference's; listed
with ListObjectsV2, so not ``azureBlob``). ``maxObjects`` caps the data objects a
prefix may hold (a window over it is refused, not cut).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.core.names import subdomain_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import MAX_OBJECTS, PartitionsSpec
from modelmonitor.core.spec.parse_object_storage import parse_object_storage
from modelmonitor.core.volume_paths import volume_path_problem

#: The object stores a prefix can be listed in.
PREFIX_SOURCES = ("s3", "gcs")
PATH = "spec.data.partitions"


def parse_partitions(r: FieldReader, spec: Mapping[str, Any]) -> PartitionsSpec | None:
    data = r.obj(spec, "data", "spec") or {}
    part = r.obj(data, "partitions", "spec.data")
    if part is None:
        return None
    max_objects = r.integer(
        part, "maxObjects", PATH, default=PartitionsSpec.max_objects, low=1, high=MAX_OBJECTS
    )
    stores = [k for k in PREFIX_SOURCES if part.get(k) is not None]
    claim = part.get("claimName") is not None or part.get("path") is not None
    if len(stores) + claim != 1:
        r.problem(PATH, "set exactly one of claimName with path, s3 or gcs")
        return None
    if stores:
        stored = parse_object_storage(r, part, stores[0], PATH, prefix=True)
        if stored is None:
            return None
        return PartitionsSpec(object_storage=stored, max_objects=max_objects)
    where = r.string(part, "path", PATH, required=True)
    problem = None if where is None else volume_path_problem(where)
    if problem is not None:
        r.problem(f"{PATH}.path", problem)
    return PartitionsSpec(
        claim_name=r.name(part, "claimName", PATH, subdomain_problem) or "",
        path=where or "",
        max_objects=max_objects,
    )
