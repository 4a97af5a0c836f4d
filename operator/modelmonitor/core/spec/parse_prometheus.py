"""Parse ``spec.prometheus``: the server, and how to authenticate to it.

The fields follow what Prometheus Operator users know (``authorization``, ``basicAuth``,
``tlsConfig``) with Kubernetes' own reference shapes (``secretKeyRef``,
``configMapKeyRef``). Credentials are never in the spec itself, only where to read
them: every name is held to Kubernetes' name rules here as in the CRD, because it
becomes a path segment of an API request. Header names and values are held to HTTP's
rules so that no value can smuggle a second header (CR/LF) into a request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from modelmonitor.core.names import key_problem, subdomain_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    LEGACY_DEFAULTS,
    HeaderSpec,
    KeyRef,
    PrometheusSpec,
    PrometheusTLSSpec,
)

MAX_HEADERS = 16
MAX_HEADER_VALUE = 4096
# RFC 9110 token: the characters a header name may have.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
# Headers the HTTP client owns (framing, routing): a monitor may not set them.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)
TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"


def header_value_problem(value: str) -> str | None:
    """None when ``value`` can be sent as one header value, else what is wrong.

    Visible ASCII, spaces and tabs only: a CR or LF would end the header and start
    another one (header injection), and other bytes are not portable.
    """
    if len(value) > MAX_HEADER_VALUE:
        return f"must be at most {MAX_HEADER_VALUE} characters"
    if any(not (ch == "\t" or " " <= ch <= "~") for ch in value):
        return "must be printable ASCII (no line breaks or control characters)"
    return None


def parse_prometheus(r: FieldReader, spec: Mapping[str, Any]) -> PrometheusSpec | None:
    data = r.obj(spec, "prometheus", "spec")
    if data is None:
        return None
    path = "spec.prometheus"
    url = r.string(data, "url", path, required=True)
    if url is not None and not re.match(r"^https?://\S+$", url):
        r.problem(f"{path}.url", "must be an http:// or https:// URL")
    timeout = r.duration_or_legacy(
        data,
        "timeout",
        "timeoutSeconds",
        path,
        unit=1.0,
        default=PrometheusSpec.timeout_seconds,
        legacy_default=LEGACY_DEFAULTS["spec.prometheus.timeoutSeconds"],
        low=0,
        high=120,
        low_open=True,
    )
    bearer, auth_type = _authorization(r, data, path)
    basic = _basic_auth(r, data, path)
    if bearer is not None and basic is not None:
        r.problem(path, "set at most one of authorization and basicAuth")
    headers = _headers(r, data, path, authenticated=bearer is not None or basic is not None)
    tls = tls_config(r, data, path)
    if tls is not None and url is not None and url.startswith("http://"):
        r.problem(f"{path}.tlsConfig", "needs an https:// URL")
    return PrometheusSpec(
        url=url or "",
        timeout_seconds=timeout or PrometheusSpec.timeout_seconds,
        bearer_token=bearer,
        authorization_type=auth_type,
        basic_auth=basic,
        headers=headers,
        tls=tls,
    )


def key_ref(
    r: FieldReader,
    data: Mapping[str, Any],
    key: str,
    path: str,
    kind: Literal["Secret", "ConfigMap"] = "Secret",
) -> KeyRef | None:
    """``{name, key}`` under ``data[key]``, both validated; None when absent or invalid."""
    ref = r.obj(data, key, path)
    if ref is None:
        return None
    where = f"{path}.{key}"
    name = r.name(ref, "name", where, subdomain_problem)
    item = r.name(ref, "key", where, key_problem)
    if name is None or item is None:
        return None
    return KeyRef(kind, name, item, where)


def _authorization(r: FieldReader, data: Mapping[str, Any], path: str) -> tuple[KeyRef | None, str]:
    auth = r.obj(data, "authorization", path)
    if auth is None:
        return None, PrometheusSpec.authorization_type
    where = f"{path}.authorization"
    auth_type = r.string(auth, "type", where, default=PrometheusSpec.authorization_type) or ""
    if not _TOKEN.fullmatch(auth_type):
        r.problem(f"{where}.type", "must be an HTTP authentication scheme such as Bearer")
    elif auth_type.lower() == "basic":
        r.problem(f"{where}.type", "use basicAuth for Basic authentication")
    credentials = key_ref(r, auth, "credentials", where)
    if credentials is None and "credentials" not in auth:
        r.problem(f"{where}.credentials", "is required")
    return credentials, auth_type


def _basic_auth(r: FieldReader, data: Mapping[str, Any], path: str) -> tuple[KeyRef, KeyRef] | None:
    basic = r.obj(data, "basicAuth", path)
    if basic is None:
        return None
    where = f"{path}.basicAuth"
    refs = []
    for part in ("username", "password"):
        if part not in basic:
            r.problem(f"{where}.{part}", "is required")
        refs.append(key_ref(r, basic, part, where))
    username, password = refs
    return (username, password) if username is not None and password is not None else None


def _headers(
    r: FieldReader, data: Mapping[str, Any], path: str, *, authenticated: bool
) -> tuple[HeaderSpec, ...]:
    items = data.get("headers")
    if items is None:
        return ()
    if not isinstance(items, list):
        r.problem(f"{path}.headers", "must be a list")
        return ()
    if len(items) > MAX_HEADERS:
        r.problem(f"{path}.headers", f"must have at most {MAX_HEADERS} items")
        return ()
    headers: list[HeaderSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{path}.headers[{i}]"
        if not isinstance(item, Mapping):
            r.problem(where, "must be an object")
            continue
        name = r.string(item, "name", where, required=True)
        if name is None:
            continue
        lowered = name.lower()
        if not _TOKEN.fullmatch(name):
            r.problem(f"{where}.name", f"invalid header name {name!r}")
            continue
        if lowered in RESERVED_HEADERS:
            r.problem(f"{where}.name", f"{name} is set by the HTTP client, not by a monitor")
            continue
        if lowered == "authorization" and authenticated:
            r.problem(f"{where}.name", "Authorization is already set by authorization/basicAuth")
            continue
        if lowered in seen:
            r.problem(f"{where}.name", f"header {name} is listed twice")
            continue
        seen.add(lowered)
        value = item.get("value")
        value_from = r.obj(item, "valueFrom", where)
        if (value is None) == (value_from is None):
            r.problem(where, "set exactly one of value or valueFrom")
            continue
        if value is not None:
            if not isinstance(value, str):
                r.problem(f"{where}.value", "must be a string")
                continue
            problem = header_value_problem(value)
            if problem is not None:
                r.problem(f"{where}.value", problem)
                continue
            headers.append(HeaderSpec(name, value=value))
            continue
        assert value_from is not None
        secret = key_ref(r, value_from, "secretKeyRef", f"{where}.valueFrom")
        if secret is None:
            if "secretKeyRef" not in value_from:
                r.problem(f"{where}.valueFrom.secretKeyRef", "is required")
            continue
        headers.append(HeaderSpec(name, secret=secret))
    return tuple(headers)


def tls_config(r: FieldReader, data: Mapping[str, Any], path: str) -> PrometheusTLSSpec | None:
    """``tlsConfig`` under ``data`` (CA, client certificate, server name); None when absent."""
    tls = r.obj(data, "tlsConfig", path)
    if tls is None:
        return None
    where = f"{path}.tlsConfig"
    ca = None
    ca_data = r.obj(tls, "ca", where)
    if ca_data is not None:
        from_cm = key_ref(r, ca_data, "configMapKeyRef", f"{where}.ca", "ConfigMap")
        from_secret = key_ref(r, ca_data, "secretKeyRef", f"{where}.ca")
        if ("configMapKeyRef" in ca_data) == ("secretKeyRef" in ca_data):
            r.problem(f"{where}.ca", "set exactly one of configMapKeyRef or secretKeyRef")
        ca = from_cm or from_secret
    cert = key = None
    client = r.obj(tls, "clientCertSecretRef", where)
    if client is not None:
        ref_path = f"{where}.clientCertSecretRef"
        name = r.name(client, "name", ref_path, subdomain_problem)
        if name is not None:
            cert = KeyRef("Secret", name, TLS_CERT_KEY, ref_path)
            key = KeyRef("Secret", name, TLS_KEY_KEY, ref_path)
    server_name = r.string(tls, "serverName", where)
    if server_name is not None and subdomain_problem(server_name.lower()) is not None:
        r.problem(f"{where}.serverName", "must be a DNS name")
        server_name = None
    skip = r.boolean(tls, "insecureSkipVerify", where, default=False)
    if skip and ca is not None:
        r.problem(f"{where}.insecureSkipVerify", "cannot be combined with ca: pick one")
    return PrometheusTLSSpec(
        ca=ca, cert=cert, key=key, server_name=server_name, insecure_skip_verify=skip
    )
