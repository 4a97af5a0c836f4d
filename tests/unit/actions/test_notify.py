"""The notify action: payloads, retries against a real loopback webhook, no URL leaks."""

from __future__ import annotations

import logging
import socket
import urllib.error
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

import modelmonitor
from modelmonitor.actions.notify import (
    ACTION_ID_HEADER,
    HttpResponse,
    build_payload,
    execute_notify,
    fenced_post,
)
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import ActionsSpec, MonitorSpec, NotifySpec, ReferenceSpec, TargetSpec
from tests.unit.actions.fake_api import FakeApi
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.webhook import WebhookRecorder

NOW = datetime(2026, 11, 26, 15, 45, 3, tzinfo=UTC)
TOKEN = "SECRET-TOKEN-xyz"
HOOK_PATH = f"/hooks/T000/{TOKEN}"
NS = "ml"


def make_spec(fmt: str = "json") -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name="fraud-model"),
        reference=ReferenceSpec(source="inline"),
        actions=ActionsSpec(
            on_slo_breach=("notify",),
            notify=NotifySpec(secret_name="hooks", secret_key="url", format=fmt),  # type: ignore[arg-type]
        ),
    )


def make_request(**overrides: Any) -> ActionRequest:
    values: dict[str, Any] = {
        "id": "inc-20261126t154501-notify-1",
        "action": "notify",
        "namespace": NS,
        "monitor": "fraud",
        "monitor_uid": "uid-1234",
        "incident": "inc-20261126t154501",
        "trigger": "slo,drift",
        "reason": "SLO availability burning 14.4x <budget> & more",
        "phase": "Degraded",
    }
    values.update(overrides)
    return ActionRequest(**values)


def api_with_url(url: str) -> FakeApi:
    api = FakeApi()
    api.secrets[(NS, "hooks", "url")] = url
    return api


class Sleeps(list[float]):
    """A no-op ``sleep`` that remembers what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def hook() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as recorder:
        yield recorder


def notify(url: str, fmt: str = "json", **kwargs: Any) -> tuple[ActionResult, Sleeps]:
    sleeps = Sleeps()
    kwargs.setdefault("now", lambda: NOW)
    kwargs.setdefault("post", fenced_post(LOOPBACK_ALLOWED))
    result = execute_notify(
        api_with_url(url), make_spec(fmt), make_request(), sleep=sleeps, **kwargs
    )
    return result, sleeps


# --- payloads -------------------------------------------------------------------------


def test_json_payload_is_the_documented_v1_object() -> None:
    payload = build_payload("json", make_request(), make_spec(), now=NOW)
    assert payload == {
        "kind": "ModelMonitorNotification",
        "version": "v1",
        "id": "inc-20261126t154501-notify-1",
        "monitor": {"namespace": NS, "name": "fraud", "uid": "uid-1234"},
        "target": {"kind": "Deployment", "name": "fraud-model"},
        "incident": "inc-20261126t154501",
        "trigger": ["slo", "drift"],
        "phase": "Degraded",
        "reason": "SLO availability burning 14.4x <budget> & more",
        "dryRun": False,
        "time": "2026-11-26T15:45:03Z",
    }


def test_slack_payload_is_block_kit_with_a_fallback_text() -> None:
    payload = build_payload("slack", make_request(), make_spec("slack"), now=NOW)
    assert set(payload) == {"text", "blocks"}
    assert "ml/fraud" in payload["text"]
    assert "Deployment/fraud-model" in payload["text"]
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "ModelMonitor ml/fraud: Degraded"}
    # mrkdwn reserves &, < and >: escaped as Slack documents
    assert blocks[1]["text"]["type"] == "mrkdwn"
    assert blocks[1]["text"]["text"] == "SLO availability burning 14.4x &lt;budget&gt; &amp; more"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields == [
        "*Monitor*\nml/fraud",
        "*Target*\nDeployment/fraud-model",
        "*Phase*\nDegraded",
        "*Trigger*\nslo + drift",
        "*Incident*\ninc-20261126t154501",
    ]
    assert "inc-20261126t154501-notify-1" in blocks[3]["elements"][0]["text"]


def test_slack_payload_respects_block_kit_limits() -> None:
    request = make_request(monitor="m" * 253, reason="r" * 10_000)
    blocks = build_payload("slack", request, make_spec("slack"), now=NOW)["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= 2000 for f in blocks[2]["fields"])


def test_unknown_format_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ValueError, match="unknown notification format"):
        build_payload("teams", make_request(), make_spec(), now=NOW)


# --- delivery -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "slack"])
def test_posts_json_with_identifying_headers(hook: WebhookRecorder, fmt: str) -> None:
    result, sleeps = notify(hook.url_for(HOOK_PATH), fmt)

    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "Notified"
    assert result.details == {"format": fmt, "attempts": 1, "status": 200}
    assert sleeps == []
    (received,) = hook.wait_for(1)
    assert received.method == "POST"
    assert received.path == HOOK_PATH
    assert received.header("Content-Type") == "application/json"
    assert received.header("User-Agent") == f"modelmonitor/{modelmonitor.__version__}"
    assert received.header(ACTION_ID_HEADER) == "inc-20261126t154501-notify-1"
    assert received.json == build_payload(fmt, make_request(), make_spec(fmt), now=NOW)


def test_retries_5xx_with_exponential_backoff() -> None:
    with WebhookRecorder(fail_first=2, fail_status=503) as hook:
        result, sleeps = notify(hook.url_for(HOOK_PATH))
        assert len(hook.requests) == 3
    assert result.outcome is Outcome.SUCCEEDED
    assert result.details == {"format": "json", "attempts": 3, "status": 200}
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_four_attempts() -> None:
    with WebhookRecorder(fail_first=10, fail_status=500) as hook:
        result, sleeps = notify(hook.url_for(HOOK_PATH))
        assert len(hook.requests) == 4
    assert result.outcome is Outcome.FAILED
    assert result.reason == "NotifyFailed"
    assert result.details == {"format": "json", "attempts": 4, "status": 500}
    assert "HTTP 500" in result.message
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(("retry_after", "expected"), [("7", 7.0), ("3600", 10.0), ("0", 0.5)])
def test_429_honours_retry_after_up_to_ten_seconds(retry_after: str, expected: float) -> None:
    with WebhookRecorder(fail_first=1, fail_status=429, retry_after=retry_after) as hook:
        result, sleeps = notify(hook.url_for(HOOK_PATH))
    assert result.outcome is Outcome.SUCCEEDED
    assert sleeps == [expected]


def test_retry_after_as_an_http_date_uses_the_injected_clock() -> None:
    with WebhookRecorder(
        fail_first=1, fail_status=503, retry_after="Thu, 26 Nov 2026 15:45:07 GMT"
    ) as hook:
        result, sleeps = notify(hook.url_for(HOOK_PATH))
    assert result.outcome is Outcome.SUCCEEDED
    assert sleeps == [4.0]


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_other_4xx_is_not_retried(status: int) -> None:
    with WebhookRecorder(fail_first=10, fail_status=status) as hook:
        result, sleeps = notify(hook.url_for(HOOK_PATH))
        assert len(hook.requests) == 1
    assert result.outcome is Outcome.FAILED
    assert result.details == {"format": "json", "attempts": 1, "status": status}
    assert "after 1 attempt, not retryable" in result.message
    assert sleeps == []


def test_a_redirect_is_not_followed() -> None:
    with WebhookRecorder(fail_first=10, fail_status=307, retry_after=None) as hook:
        result, _ = notify(hook.url_for(HOOK_PATH))
        assert len(hook.requests) == 1
    assert result.outcome is Outcome.FAILED
    assert result.details["status"] == 307


def test_a_trailing_newline_in_the_secret_is_ignored(hook: WebhookRecorder) -> None:
    result, _ = notify(hook.url_for(HOOK_PATH) + "\n")
    assert result.outcome is Outcome.SUCCEEDED


def test_injected_post_gets_url_body_headers_and_timeout() -> None:
    calls: list[tuple[str, bytes, Mapping[str, str], float]] = []

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        calls.append((url, body, headers, timeout))
        return HttpResponse(204, {})

    result, _ = notify("https://hooks.example.com" + HOOK_PATH, post=post)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.details["status"] == 204
    ((url, _, headers, timeout),) = calls
    assert url == "https://hooks.example.com" + HOOK_PATH
    assert headers[ACTION_ID_HEADER] == "inc-20261126t154501-notify-1"
    assert timeout == 5.0


def test_tls_verification_failures_are_not_retried() -> None:
    import ssl

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        raise urllib.error.URLError(ssl.SSLCertVerificationError(f"bad cert for {url}"))

    result, sleeps = notify("https://hooks.example.com" + HOOK_PATH, post=post)
    assert result.outcome is Outcome.FAILED
    assert result.details["error"] == "SSLCertVerificationError"
    assert sleeps == []


# --- refusals -------------------------------------------------------------------------


def test_missing_secret_is_skipped_and_named() -> None:
    result = execute_notify(FakeApi(), make_spec(), make_request(), sleep=Sleeps())
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "SecretNotFound"
    assert "ml/hooks" in result.message
    assert "key url" in result.message


def test_unreadable_secret_fails_without_raising() -> None:
    from modelmonitor.core.cluster import ApiError

    api = FakeApi()
    api.fail[("SECRET", f"{NS}/hooks/url")] = ApiError(403, "forbidden")
    result = execute_notify(api, make_spec(), make_request(), sleep=Sleeps())
    assert result.outcome is Outcome.FAILED
    assert result.reason == "NotifyFailed"


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://hooks.example.com{HOOK_PATH}",
        f"hooks.example.com{HOOK_PATH}",
        f"https://hooks.example.com:port{HOOK_PATH}",
        f"https:///{HOOK_PATH}",
        f"https://hooks.example.com{HOOK_PATH} trailing",
        f"https://hooks.example.com{HOOK_PATH}\x00",
    ],
)
def test_an_invalid_url_is_refused_without_quoting_it(url: str) -> None:
    result, _ = notify(url)
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "InvalidWebhookUrl"
    assert TOKEN not in repr(result)


def test_dry_run_posts_nothing(hook: WebhookRecorder) -> None:
    result = execute_notify(
        api_with_url(hook.url_for(HOOK_PATH)),
        make_spec("slack"),
        make_request(dry_run=True),
        sleep=Sleeps(),
    )
    assert result.outcome is Outcome.DRY_RUN
    assert result.message == (
        "would POST a slack notification to the webhook in secret ml/hooks key url"
    )
    assert hook.requests == []


def test_not_configured_is_skipped() -> None:
    spec = MonitorSpec(target=TargetSpec(name="m"), reference=ReferenceSpec(source="inline"))
    result = execute_notify(FakeApi(), spec, make_request(), sleep=Sleeps())
    assert result.outcome is Outcome.SKIPPED


# --- the URL never leaks ----------------------------------------------------------------


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{HOOK_PATH}"


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("connection refused", (Outcome.FAILED, 4)),
        ("500 then 200", (Outcome.SUCCEEDED, 2)),
        ("404", (Outcome.FAILED, 1)),
        ("timeout", (Outcome.FAILED, 4)),
        ("always 503", (Outcome.FAILED, 4)),
    ],
)
def test_the_url_appears_nowhere(
    scenario: str, expected: tuple[Outcome, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = {
        "connection refused": None,
        "500 then 200": WebhookRecorder(fail_first=1, fail_status=500),
        "404": WebhookRecorder(fail_first=10, fail_status=404),
        "timeout": WebhookRecorder(delay=2.0),
        "always 503": WebhookRecorder(fail_first=10, fail_status=503),
    }[scenario]
    if recorder is None:
        url = _refused_url()
        result, _ = notify(url)
    else:
        with recorder:
            url = recorder.url_for(HOOK_PATH)
            result, _ = notify(url, timeout=0.2)

    assert (result.outcome, result.details["attempts"]) == expected
    host_port = url.split("/")[2]
    visible = [result.message, repr(result.details), caplog.text]
    visible += [str(record.args) for record in caplog.records]
    for secret in (TOKEN, "/hooks/T000", host_port, url):
        for text in visible:
            assert secret not in text, f"{scenario}: {secret!r} leaked into {text!r}"
    if scenario == "connection refused":
        assert result.details["error"] == "ConnectionRefusedError"
    if scenario == "timeout":
        assert result.details["error"] == "TimeoutError"


def test_exception_text_quoting_the_url_is_reduced_to_its_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "https://hooks.example.com" + HOOK_PATH

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        raise RuntimeError(f"cannot reach {url}")

    result, sleeps = notify(url, post=post)
    assert result.outcome is Outcome.FAILED
    assert result.details["error"] == "RuntimeError"
    assert sleeps == []  # not a network error: not retried
    assert TOKEN not in repr(result)
    assert TOKEN not in caplog.text
