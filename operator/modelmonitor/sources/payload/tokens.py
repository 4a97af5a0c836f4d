"""Each payload-log monitor's token: read from its Secret, or created with the Secret.

The Secret (:func:`modelmonitor.core.payload_token.build_token_secret`) is created only
when it is missing and never overwritten: a user rotates the token by deleting it (the
operator creates a new one at the monitor's next reconciliation), and a Secret a user
created under that name with their own token is used as it is. Blocking (API calls):
call it from a worker thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

from modelmonitor.core.cluster import ApiError, ReferenceLookupError
from modelmonitor.core.payload_token import (
    TOKEN_BYTES,
    TokenError,
    build_token_secret,
    read_token,
    token_secret_name,
)


class TokenSecrets(Protocol):
    """The two calls this needs (``adapters.kube.KubeClient`` has them)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def ensure_token(
    api: TokenSecrets,
    namespace: str,
    monitor: str,
    uid: str,
    base_url: str,
    *,
    generate: Callable[[], str] = new_token,
) -> str:
    """The monitor's token: the one in its Secret, or a new one in a new Secret.
    TokenError with a message fit for status and logs (it never holds the token)."""
    name = token_secret_name(monitor)
    secret = _get(api, namespace, name)
    if secret is None:
        token = generate()
        body = build_token_secret(namespace, monitor, uid, token, base_url)
        try:
            api.create_secret(namespace, body)
            return token
        except ApiError as exc:
            if exc.status != 409:  # 409: created meanwhile (another reconciliation)
                raise TokenError(
                    f"creating payload-log Secret {namespace}/{name}: HTTP {exc.status}"
                ) from None
        secret = _get(api, namespace, name)
        if secret is None:
            raise TokenError(f"payload-log Secret {namespace}/{name} vanished as it was created")
    return read_token(secret)


def _get(api: TokenSecrets, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return api.get("Secret", namespace, name)
    except ReferenceLookupError as exc:
        raise TokenError(str(exc)) from None
