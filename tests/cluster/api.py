"""The node agent's client of the API server: plain-dict requests with a kubeconfig's
credentials, and timestamps in the API's formats.

The harness never imports the operator (``modelmonitor``), not even its Kubernetes
adapter, and has this small client of its own instead: the harness is the referee the
operator is tested against, so a bug in the operator's adapter must not be able to hide
itself by being in the harness that checks it too.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


@contextlib.contextmanager
def _as_api_error() -> Iterator[None]:
    """Turn every failed exchange with the API server into :class:`ApiError`.

    The kubernetes client raises ApiException for an error status, but lets urllib3's own
    exceptions through when no answer comes (MaxRetryError for a refused connection,
    ProtocolError for one dropped mid-stream, ReadTimeoutError): those become status 0,
    so that callers handle an unreachable API server like any other failed request.
    """
    try:
        yield
    except ApiException as exc:
        message = exc.reason or ""
        with contextlib.suppress(ValueError, TypeError):
            message = json.loads(exc.body).get("message", message)
        raise ApiError(int(exc.status or 0), str(message)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApiError(0, f"no answer from the API server: {type(exc).__name__}: {exc}") from exc


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(RuntimeError):
    """The API server answered a request with an error status, or (status 0) not at all."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class KubeApi:
    """Plain-dict requests to the API server with the credentials of a kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._client: ApiClient = kube_config.new_client_from_config(
            config_file=str(kubeconfig), persist_config=False
        )

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
        timeout: float | tuple[float, float] = 30.0,
    ) -> Any:
        with _as_api_error():
            return self._client.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
    ) -> Obj:
        resp = self._call(method, path, body=body, query=query, content_type=content_type)
        with _as_api_error():
            data = resp.data
        return json.loads(data) if data else {}

    def get(self, path: str, **query: Any) -> Obj:
        return self.request("GET", path, query=list(query.items()))

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Obj) -> Obj:
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        return self.request("DELETE", path, body=body)

    def watch(self, path: str, stop: threading.Event, **query: Any) -> Iterator[Obj]:
        """Yield watch events until the server ends the watch or ``stop`` is set."""
        seconds = int(query.setdefault("timeoutSeconds", 30))
        query["watch"] = "true"
        resp = self._call("GET", path, query=list(query.items()), timeout=(5.0, seconds + 10.0))
        try:
            with _as_api_error():
                buffer = b""
                for chunk in resp.stream(None, decode_content=False):
                    if stop.is_set():
                        return
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        finally:
            resp.release_conn()
