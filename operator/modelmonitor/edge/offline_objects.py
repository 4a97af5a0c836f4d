"""``modelmonitor check --current s3://bucket/prefix/``: a prefix of objects, streamed.

The prefix is listed and each data object read by the same code as a monitor's
``spec.data.partitions.s3`` (:mod:`modelmonitor.sources.object_partitions`): signed by us,
sent through the outbound fence, within the same caps. The credentials and the endpoint
come from the environment the AWS tools read (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``) or ``--endpoint-url``; a custom endpoint
is addressed path-style, as S3-compatible servers expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.dataset import Feature
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.object_storage import (
    endpoint_problem,
    object_prefix_problem,
    region_problem,
    s3_bucket_problem,
)
from modelmonitor.core.spec import KeyRef, ObjectStorageSpec
from modelmonitor.core.spec.model import MAX_OBJECTS, PartitionsSpec
from modelmonitor.edge.config import object_storage_environment
from modelmonitor.edge.offline import UsageError

SCHEME = "s3://"
_ROLES = {
    "accessKeyId": "AWS_ACCESS_KEY_ID",
    "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
    "sessionToken": "AWS_SESSION_TOKEN",
}


def is_object_prefix(current: str) -> bool:
    return current.startswith(SCHEME)


class _Environment:
    """The environment as the one 'Secret' the reader asks for."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        values = {v: self.env[v] for v in _ROLES.values() if self.env.get(v)}
        return {"stringData": values}


def prefix_spec(
    current: str, endpoint: str | None, env: Mapping[str, str], max_objects: int
) -> PartitionsSpec:
    """The window ``s3://bucket/prefix`` names, with its credentials from ``env``."""
    bucket, _, prefix = current.removeprefix(SCHEME).partition("/")
    for problem in (s3_bucket_problem(bucket), object_prefix_problem(prefix)):
        if problem is not None:
            raise UsageError(f"--current {current}: {problem}")
    endpoint = endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    if endpoint is not None and (problem := endpoint_problem(endpoint)) is not None:
        raise UsageError(f"--endpoint-url {endpoint}: {problem}")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    if (problem := region_problem(region)) is not None:
        raise UsageError(f"AWS_REGION: {problem}")
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(v)]
    if missing:
        raise UsageError(f"--current {current} needs {' and '.join(missing)} in the environment")
    if not 1 <= max_objects <= MAX_OBJECTS:
        raise UsageError(f"--max-objects must lie in [1, {MAX_OBJECTS}]")
    roles = {r: v for r, v in _ROLES.items() if env.get(v)}
    stored = ObjectStorageSpec(
        provider="s3",
        bucket=bucket,
        key=prefix,
        secret_name="environment",
        credentials={r: KeyRef("Secret", "environment", v, v) for r, v in roles.items()},
        endpoint=endpoint.rstrip("/") if endpoint else None,
        region=region,
        path_style=endpoint is not None,
    )
    return PartitionsSpec(object_storage=stored, max_objects=max_objects)


def read_object_window(
    current: str,
    features: list[Feature],
    limits: ReadLimits,
    *,
    endpoint: str | None = None,
    max_objects: int = PartitionsSpec.max_objects,
    env: Mapping[str, str] | None = None,
) -> tuple[Any, int]:
    """The merged profile of the prefix's data objects, and how many there were."""
    from modelmonitor.adapters.outbound import Outbound
    from modelmonitor.core.outbound import OutboundPolicy
    from modelmonitor.sources.object_partitions import PartitionsError, read_prefix_window

    env = object_storage_environment() if env is None else env
    part = prefix_spec(current, endpoint, env, max_objects)
    allow = [c.strip() for c in env.get("OUTBOUND_ALLOW_CIDRS", "").split(",") if c.strip()]
    try:
        outbound = Outbound(OutboundPolicy.parse(allow))
    except ValueError as exc:
        raise UsageError(f"OUTBOUND_ALLOW_CIDRS: {exc}") from None
    try:
        window = asyncio.run(
            read_prefix_window(
                part,
                features,
                namespace="",
                lookup=_Environment(env),
                outbound=outbound,
                limits=limits,
            )
        )
    except PartitionsError as exc:
        raise UsageError(f"{exc} ({exc.reason})") from None
    return window.profile, window.objects
