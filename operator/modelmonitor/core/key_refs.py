"""Reading one key of a Secret or ConfigMap as the API returns it, and saying it is absent.

Shared by the reference check (Ready) and the Prometheus source (each run), so that both
read a value the same way and word its absence the same way: one message for an absent
object and an absent key, since it is read by people who may not read Secrets and must
not learn from it whether a Secret of that name exists.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from modelmonitor.core.spec import KeyRef


def ref_value(obj: Mapping[str, Any] | None, ref: KeyRef) -> bytes | None:
    """The bytes under ``ref.key``: a Secret's ``data`` (base64) or ``stringData``, a
    ConfigMap's ``data`` or ``binaryData`` (base64); None when absent or not decodable."""
    if obj is None:
        return None
    encoded = (obj.get("data") if ref.kind == "Secret" else obj.get("binaryData")) or {}
    raw = encoded.get(ref.key)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    plain = (obj.get("stringData") if ref.kind == "Secret" else obj.get("data")) or {}
    text = plain.get(ref.key)
    return text.encode() if isinstance(text, str) else None


def not_found_message(namespace: str, ref: KeyRef) -> str:
    """The one wording of an absent object or key."""
    return (
        f"{ref.kind} {namespace}/{ref.name} ({ref.field}) does not exist or has no key {ref.key!r}"
    )


def not_found_reason(ref: KeyRef) -> str:
    """The status reason of an absent object or key."""
    return "SecretNotFound" if ref.kind == "Secret" else "ConfigMapNotFound"
