"""Object storage credentials: read from the monitor's own Secret, and a request signed.

Shared by the reference loaders (one object) and the partitions source (a prefix's
listing and objects). Every value comes from the one Secret ``secretRef.name`` in the
monitor's namespace (there is no namespace field); a value is never put into a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from modelmonitor.core.cluster import ObjectLookup, ReferenceLookupError
from modelmonitor.core.key_refs import not_found_message, ref_value
from modelmonitor.core.object_storage import (
    AZURE_VERSION,
    azure_shared_key,
    sigv4_headers,
    with_sas,
)
from modelmonitor.core.spec import ObjectStorageSpec


class CredentialsError(Exception):
    """The credentials could not be read or used; ``reason`` is a status reason
    (``SecretNotFound``, ``InvalidCredentials``, or ``unavailable`` when the API failed)."""

    UNAVAILABLE = "unavailable"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def read_credentials(
    lookup: ObjectLookup, namespace: str, stored: ObjectStorageSpec, shown: str
) -> dict[str, str]:
    """Each credential of ``stored`` as text, read from the monitor's own namespace."""
    try:
        secret = await asyncio.to_thread(lookup.get, "Secret", namespace, stored.secret_name)
    except ReferenceLookupError as exc:
        raise CredentialsError(
            CredentialsError.UNAVAILABLE, f"{shown}: could not read its Secret: {exc}"
        ) from exc
    values: dict[str, str] = {}
    for role, ref in stored.credentials.items():
        raw = ref_value(secret, ref)
        if raw is None:
            raise CredentialsError("SecretNotFound", not_found_message(namespace, ref))
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = ""
        if not text or any(not (" " <= c <= "~") for c in text):
            raise CredentialsError(
                "InvalidCredentials",
                f"Secret {namespace}/{ref.name} key {ref.key!r} ({ref.field}) is empty or "
                "not printable ASCII",
            )
        values[role] = text
    return values


def signed(
    stored: ObjectStorageSpec, url: str, headers: Mapping[str, str], values: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a signed GET (a SAS token goes into the query)."""
    now = datetime.now(UTC)
    try:
        if stored.provider == "azureBlob":
            if "sasToken" in values:
                return with_sas(url, values["sasToken"]), {"x-ms-version": AZURE_VERSION, **headers}
            account = stored.account or ""
            return url, azure_shared_key(
                "GET", url, headers, account=account, account_key=values["accountKey"], now=now
            )
        return url, sigv4_headers(
            "GET",
            url,
            headers,
            access_key=values["accessKeyId"],
            secret_key=values["secretAccessKey"],
            session_token=values.get("sessionToken"),
            region=stored.region,
            now=now,
        )
    except ValueError as exc:  # a malformed account key or SAS token: never its value
        raise CredentialsError(
            "InvalidCredentials", f"Secret {stored.secret_name}: {exc}"
        ) from None


def secret_values(values: Mapping[str, str]) -> tuple[str, ...]:
    """The values to mask in any text that might quote a request (long enough to matter)."""
    return tuple(v for v in values.values() if len(v) >= 4)
