"""POSTing to webhooks through the outbound fence: one request, its answer, its errors.

Shared by the ``notify`` action and the incident notifications (``spec.alerting``). A
webhook URL is often a credential (a Slack incoming-webhook URL is all anyone needs to
post to the channel): nothing here puts a URL in a message; errors are described by an
HTTP status or an error *class*, because the text of urllib's errors often quotes it.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelmonitor.adapters.outbound import Outbound, find_refusal


@dataclass(frozen=True)
class HttpResponse:
    """What the sender needs of an answer: the status and the headers (Retry-After)."""

    status: int
    headers: Mapping[str, str]


# post(url, body, headers, timeout) -> the answer, any status; raises OSError (connection
# errors, timeouts) or http.client.HTTPException when there is no answer.
Post = Callable[[str, bytes, Mapping[str, str], float], HttpResponse]


def fenced_post(outbound: Outbound | None = None) -> Post:
    """A POST through ``outbound`` (default: the strict fence): its addresses checked, no
    redirect followed, no proxy, at most ``limits.webhook`` bytes of the answer read."""
    fence = outbound or Outbound()
    opener = fence.opener()

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(fence.limits.webhook)  # a little, so keep-alive peers are not reset
                return HttpResponse(response.status, dict(response.headers.items()))
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpResponse(exc.code, dict(exc.headers.items()) if exc.headers else {})

    return post


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
    """POST ``body`` through the strict fence; every status is an answer, not an error."""
    return _STRICT_POST(url, body, headers, timeout)


_STRICT_POST = fenced_post()


def valid_url(url: str) -> bool:
    """An absolute http(s) URL that urllib can send without an error quoting it."""
    if not url.isprintable() or any(c.isspace() for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def error_class(exc: BaseException) -> str:
    """The class of what went wrong, never its text (which may quote the URL); a refused
    address names the rule that refused it, not the address."""
    refused = find_refusal(exc)
    if refused is not None:
        return f"OutboundRefused ({refused.reason})"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return type(exc.reason).__name__
    return type(exc).__name__


def retryable_error(exc: BaseException) -> bool:
    """Connection errors and timeouts are worth another try; TLS verification is not."""
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError) or find_refusal(exc) is not None:
        return False
    return isinstance(exc, OSError | http.client.HTTPException)


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500
