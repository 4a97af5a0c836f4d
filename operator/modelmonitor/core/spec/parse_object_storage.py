"""Parse a reference in object storage: ``s3``, ``gcs`` or ``azureBlob`` under a reference.

Each names one object and one Secret in the monitor's namespace its credentials are read
from (``secretRef``: the Secret's name and the keys of each value). Bucket, container
and account names follow their provider's rules, object keys
:func:`~modelmonitor.core.object_storage.object_key_problem`, the Secret's name and keys
Kubernetes' rules: the CRD states the same and this module checks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelmonitor.core.names import key_problem, subdomain_problem
from modelmonitor.core.object_storage import (
    azure_account_problem,
    azure_container_problem,
    endpoint_problem,
    gcs_bucket_problem,
    object_key_problem,
    object_prefix_problem,
    region_problem,
    s3_bucket_problem,
)
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import KeyRef, ObjectStorageSpec

OBJECT_STORAGE_SOURCES = ("s3", "gcs", "azureBlob")
#: The Secret keys read by default: the names KServe's storage initializer and the AWS
#: tools read from the environment, so an existing Secret works as it is.
DEFAULT_ACCESS_KEY_ID_KEY = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_ACCESS_KEY_KEY = "AWS_SECRET_ACCESS_KEY"
GCS_REGION = "auto"  # what GCS's XML API expects in a SigV4 scope


def parse_object_storage(
    r: FieldReader, data: Mapping[str, Any], kind: str, path: str, *, prefix: bool = False
) -> ObjectStorageSpec | None:
    """``data[kind]`` (``s3``, ``gcs`` or ``azureBlob``) at ``path`` (``spec.reference``).

    ``prefix``: the object is a prefix (``spec.data.partitions``): its ``prefix`` field,
    held to :func:`object_prefix_problem`, becomes the spec's ``key`` (s3 and gcs only).
    """
    where = f"{path}.{kind}"
    obj = r.obj(data, kind, path)
    if obj is None:
        return None
    if kind == "azureBlob":
        return _azure(r, obj, where)
    bucket_rule = s3_bucket_problem if kind == "s3" else gcs_bucket_problem
    bucket = _checked(r, obj, "bucket", where, bucket_rule)
    if prefix:
        key = _checked(r, obj, "prefix", where, object_prefix_problem)
    else:
        key = _checked(r, obj, "key", where, object_key_problem)
    endpoint = _endpoint(r, obj, where, path_allowed=False)
    if kind == "s3":
        region = _checked(r, obj, "region", where, region_problem, default=ObjectStorageSpec.region)
        path_style = r.boolean(obj, "forcePathStyle", where, default=ObjectStorageSpec.path_style)
    else:
        region, path_style = GCS_REGION, True
    secret, credentials = _secret_ref(r, obj, where, azure=False, token=kind == "s3")
    if bucket is None or key is None or secret is None or region is None:
        return None
    return ObjectStorageSpec(
        provider="s3" if kind == "s3" else "gcs",
        bucket=bucket,
        key=key,
        secret_name=secret,
        credentials=credentials,
        endpoint=endpoint,
        region=region,
        path_style=path_style,
    )


def _azure(r: FieldReader, obj: Mapping[str, Any], where: str) -> ObjectStorageSpec | None:
    account = _checked(r, obj, "account", where, azure_account_problem)
    container = _checked(r, obj, "container", where, azure_container_problem)
    blob = _checked(r, obj, "blob", where, object_key_problem)
    endpoint = _endpoint(r, obj, where, path_allowed=True)
    secret, credentials = _secret_ref(r, obj, where, azure=True)
    if account is None or container is None or blob is None or secret is None:
        return None
    return ObjectStorageSpec(
        provider="azureBlob",
        bucket=container,
        key=blob,
        secret_name=secret,
        credentials=credentials,
        endpoint=endpoint,
        account=account,
        path_style=True,
    )


def _checked(
    r: FieldReader,
    obj: Mapping[str, Any],
    key: str,
    where: str,
    rule: Callable[[str], str | None],
    default: str | None = None,
) -> str | None:
    value = r.string(obj, key, where, required=default is None, default=default)
    if value is None:
        return None
    problem = rule(value)
    if problem is not None:
        r.problem(f"{where}.{key}", problem)
        return None
    return value


def _endpoint(
    r: FieldReader, obj: Mapping[str, Any], where: str, *, path_allowed: bool
) -> str | None:
    endpoint = r.string(obj, "endpoint", where)
    if endpoint is None:
        return None
    problem = endpoint_problem(endpoint, path_allowed=path_allowed)
    if problem is not None:
        r.problem(f"{where}.endpoint", problem)
        return None
    return endpoint.rstrip("/")


def _secret_ref(
    r: FieldReader, obj: Mapping[str, Any], where: str, *, azure: bool, token: bool = False
) -> tuple[str | None, dict[str, KeyRef]]:
    """The Secret's name and a KeyRef per credential; ``token``: a session token may be
    given (S3's temporary credentials; GCS's HMAC keys have none)."""
    ref_path = f"{where}.secretRef"
    ref = r.obj(obj, "secretRef", where)
    if ref is None:
        r.problem(ref_path, "is required (the Secret the credentials are read from)")
        return None, {}
    name = r.name(ref, "name", ref_path, subdomain_problem)
    wanted: dict[str, str | None]
    if azure:
        present = [k for k in ("accountKeyKey", "sasTokenKey") if ref.get(k) is not None]
        if len(present) != 1:
            r.problem(ref_path, "set exactly one of accountKeyKey or sasTokenKey")
            return None, {}
        wanted = {present[0].removesuffix("Key"): None}
    else:
        wanted = {
            "accessKeyId": DEFAULT_ACCESS_KEY_ID_KEY,
            "secretAccessKey": DEFAULT_SECRET_ACCESS_KEY_KEY,
        }
        if token:
            wanted["sessionToken"] = None
    credentials: dict[str, KeyRef] = {}
    for role, default in wanted.items():
        field = f"{role}Key"
        if ref.get(field) is None and default is None:
            continue
        key = r.string(ref, field, ref_path, default=default)
        if key is None:
            continue
        problem = key_problem(key)
        if problem is not None:
            r.problem(f"{ref_path}.{field}", problem)
            continue
        if name is not None:
            credentials[role] = KeyRef("Secret", name, key, f"{ref_path}.{field}")
    return name, credentials
