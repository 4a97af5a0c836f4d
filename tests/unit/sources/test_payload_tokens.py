"""Payload-log tokens: the Secret the operator creates once, reads after, never overwrites.

The API is a small fake of ours (the two calls :func:`ensure_token` makes); the names,
bodies and URLs are the pure functions of :mod:`modelmonitor.core.payload_token`.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from modelmonitor.core.cluster import ApiError, ReferenceLookupError
from modelmonitor.core.names import subdomain_problem
from modelmonitor.core.payload_token import (
    TOKEN_KEY,
    URL_KEY,
    TokenError,
    logger_url,
    payload_status,
    token_problem,
    token_secret_name,
)
from modelmonitor.sources.payload.tokens import ensure_token, new_token

BASE = "http://modelmonitor-payload.modelmonitor-system.svc:8082"
UID = "3f1c2d4e-0000-4000-8000-000000000001"


class FakeSecrets:
    """Secrets by (namespace, name), stored as the API returns them (``data`` base64)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.fail_get: Exception | None = None
        self.conflict_with: dict[str, Any] | None = None  # created by someone else meanwhile

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert kind == "Secret"
        if self.fail_get is not None:
            raise self.fail_get
        return self.objects.get((namespace, name))

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if self.conflict_with is not None:
            self.objects[(namespace, name)] = self.conflict_with
            raise ApiError(409, "already exists")
        if (namespace, name) in self.objects:
            raise ApiError(409, "already exists")
        self.created.append(body)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in body["stringData"].items()}
        self.objects[(namespace, name)] = {"metadata": body["metadata"], "data": data}
        return body


def secret_with(token: str, name: str = "fraud-payload-log") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def test_a_missing_secret_is_created_owned_by_the_monitor() -> None:
    api = FakeSecrets()
    token = ensure_token(api, "ml", "fraud", UID, BASE)
    assert token_problem(token) is None
    (body,) = api.created
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fraud-payload-log", "ml")
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "name": "fraud",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert body["stringData"] == {
        TOKEN_KEY: token,
        URL_KEY: f"{BASE}/v1/logs/ml/fraud/{token}",
    }
    # read back, never created twice
    assert ensure_token(api, "ml", "fraud", UID, BASE) == token
    assert len(api.created) == 1


def test_an_existing_secret_is_used_and_never_overwritten() -> None:
    api = FakeSecrets()
    mine = "u" * 40
    api.objects[("ml", "fraud-payload-log")] = secret_with(mine)
    assert ensure_token(api, "ml", "fraud", UID, BASE) == mine
    assert api.created == []


def test_deleting_the_secret_rotates_the_token() -> None:
    api = FakeSecrets()
    first = ensure_token(api, "ml", "fraud", UID, BASE)
    del api.objects[("ml", "fraud-payload-log")]
    second = ensure_token(api, "ml", "fraud", UID, BASE)
    assert second != first


def test_a_secret_created_meanwhile_is_read() -> None:
    api = FakeSecrets()
    theirs = "v" * 43
    api.conflict_with = secret_with(theirs)
    assert ensure_token(api, "ml", "fraud", UID, BASE) == theirs


@pytest.mark.parametrize(
    "data",
    [
        {},
        {TOKEN_KEY: base64.b64encode(b"short").decode()},
        {TOKEN_KEY: base64.b64encode(b"has/slash" * 8).decode()},
        {TOKEN_KEY: "%%% not base64"},
    ],
)
def test_an_unusable_secret_is_an_error_that_never_shows_its_value(data: dict[str, str]) -> None:
    api = FakeSecrets()
    api.objects[("ml", "fraud-payload-log")] = {
        "metadata": {"name": "fraud-payload-log"},
        "data": data,
    }
    with pytest.raises(TokenError, match="Secret fraud-payload-log") as err:
        ensure_token(api, "ml", "fraud", UID, BASE)
    assert "delete it" in str(err.value)
    for value in data.values():
        assert value not in str(err.value)
        if value.endswith("="):  # the decodable ones: their decoded text is not shown either
            assert base64.b64decode(value).decode() not in str(err.value)


def test_api_failures_become_token_errors() -> None:
    api = FakeSecrets()
    api.fail_get = ReferenceLookupError("reading Secret ml/fraud-payload-log: HTTP 403 Forbidden")
    with pytest.raises(TokenError, match="HTTP 403"):
        ensure_token(api, "ml", "fraud", UID, BASE)

    class Forbidden(FakeSecrets):
        def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
            raise ApiError(403, "secrets is forbidden")

    token_seen: list[str] = []

    def generate() -> str:
        token_seen.append(new_token())
        return token_seen[-1]

    with pytest.raises(
        TokenError, match="creating payload-log Secret ml/fraud-payload-log: HTTP 403"
    ) as err:
        ensure_token(Forbidden(), "ml", "fraud", UID, BASE, generate=generate)
    assert token_seen[0] not in str(err.value)


def test_secret_names_are_valid_and_distinct_for_long_monitor_names() -> None:
    assert token_secret_name("fraud") == "fraud-payload-log"
    a, b = "a" * 250, "a" * 249 + "b"
    names = {token_secret_name(a), token_secret_name(b)}
    assert len(names) == 2
    for name in names:
        assert len(name) <= 253
        assert subdomain_problem(name) is None
    with pytest.raises(TokenError):
        token_secret_name("../../kube-system/x")


def test_status_shows_where_the_url_is_never_the_token() -> None:
    status = payload_status(BASE, "ml", "fraud")
    assert status == {
        "url": f"{BASE}/v1/logs/ml/fraud/<token>",
        "secretName": "fraud-payload-log",
        "secretKey": URL_KEY,
    }
    assert logger_url(BASE + "/", "ml", "fraud", "T" * 43) == f"{BASE}/v1/logs/ml/fraud/{'T' * 43}"


def test_new_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(token_problem(t) is None and len(t) >= 43 for t in tokens)
