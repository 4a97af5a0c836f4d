"""The credentials of ``spec.prometheus``: read from the monitor's Secrets and ConfigMaps.

Read again at every run (a rotated token or certificate is used from the next run on,
with no restart and no cache to go stale), turned into the headers and the TLS context
the :class:`~modelmonitor.sources.prometheus.PrometheusClient` sends through the outbound
fence. What is read never leaves this module except as those two objects: messages name
the Secret, the key and the spec field, never a value; a missing Secret and a missing key
read the same, so a user who cannot read Secrets learns nothing about which exist.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from modelmonitor.core.cluster import ReferenceLookupError
from modelmonitor.core.key_refs import not_found_message, not_found_reason, ref_value
from modelmonitor.core.outbound import sanitize
from modelmonitor.core.spec import KeyRef, PrometheusSpec
from modelmonitor.core.spec.parse_prometheus import header_value_problem
from modelmonitor.sources.endpoint import EndpointLookup


class CredentialsUnavailable(Exception):  # noqa: N818 (named as the status reason)
    """A credential could not be read or used; ``reason`` is the problem's status reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PrometheusAuth:
    """What to send: headers (credentials among them) and the TLS context (None: the
    system's trust store). ``repr`` shows neither."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    server_name: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)  # to blank out of messages


async def load_prometheus_auth(
    lookup: EndpointLookup, namespace: str, spec: PrometheusSpec
) -> PrometheusAuth:
    """Read every credential ``spec`` names from ``namespace`` and build what to send.

    Raises :class:`CredentialsUnavailable` (SecretNotFound, ConfigMapNotFound,
    LookupFailed, InvalidCredentials) naming the field, never a value.
    """
    refs = spec.refs()
    values = await asyncio.gather(*(_read(lookup, namespace, ref) for ref in refs))
    read = dict(zip(refs, values, strict=True))
    headers: dict[str, str] = {}
    secrets: list[str] = []
    for header in spec.headers:
        if header.secret is not None:
            headers[header.name] = _header_text(namespace, header.secret, read[header.secret])
            secrets.append(headers[header.name])
        elif header.value is not None:
            headers[header.name] = header.value
    if spec.bearer_token is not None:
        token = _header_text(namespace, spec.bearer_token, read[spec.bearer_token])
        headers["Authorization"] = f"{spec.authorization_type} {token}"
        secrets.append(token)
    if spec.basic_auth is not None:
        user_ref, password_ref = spec.basic_auth
        user = _header_text(namespace, user_ref, read[user_ref])
        password = ref_text(namespace, password_ref, read[password_ref])
        if ":" in user:
            raise CredentialsUnavailable(
                "InvalidCredentials",
                f"the user name in {where(namespace, user_ref)} contains ':', "
                "which Basic authentication cannot carry",
            )
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
        secrets.extend((pair, password))
    tls = spec.tls
    if tls is None:
        return PrometheusAuth(headers=headers, secrets=tuple(secrets))
    context = tls_context(
        namespace,
        ca=(tls.ca, read[tls.ca]) if tls.ca is not None else None,
        cert=(tls.cert, read[tls.cert]) if tls.cert is not None else None,
        key=(tls.key, read[tls.key]) if tls.key is not None else None,
        insecure=tls.insecure_skip_verify,
    )
    return PrometheusAuth(
        headers=headers, tls=context, server_name=tls.server_name, secrets=tuple(secrets)
    )


async def _read(lookup: EndpointLookup, namespace: str, ref: KeyRef) -> bytes:
    return await asyncio.to_thread(read_ref, lookup, namespace, ref)


def read_ref(lookup: EndpointLookup, namespace: str, ref: KeyRef) -> bytes:
    """The bytes under ``ref`` in ``namespace`` (blocking); :class:`CredentialsUnavailable`
    when absent or unreadable, in words that never tell which of the two."""
    try:
        obj = lookup.get(ref.kind, namespace, ref.name)
    except ReferenceLookupError as exc:
        raise CredentialsUnavailable(
            "LookupFailed", f"could not read {ref.kind} {namespace}/{ref.name} ({ref.field}): {exc}"
        ) from None
    value = ref_value(obj, ref)
    if value is None:
        raise CredentialsUnavailable(not_found_reason(ref), not_found_message(namespace, ref))
    return value


def where(namespace: str, ref: KeyRef) -> str:
    return f"{ref.kind} {namespace}/{ref.name} key {ref.key!r} ({ref.field})"


def ref_text(namespace: str, ref: KeyRef, value: bytes) -> str:
    """UTF-8 text without the trailing newline ``kubectl create secret --from-file`` keeps."""
    try:
        return value.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CredentialsUnavailable(
            "InvalidCredentials", f"{where(namespace, ref)} is not UTF-8 text"
        ) from None


def _header_text(namespace: str, ref: KeyRef, value: bytes) -> str:
    text = ref_text(namespace, ref, value)
    problem = header_value_problem(text)
    if problem is not None or not text:
        raise CredentialsUnavailable(
            "InvalidCredentials",
            f"{where(namespace, ref)} cannot be sent in a header: {problem or 'it is empty'}",
        )
    return text


def tls_context(
    namespace: str,
    *,
    ca: tuple[KeyRef, bytes] | None,
    cert: tuple[KeyRef, bytes] | None,
    key: tuple[KeyRef, bytes] | None,
    insecure: bool,
    factory: Callable[[], ssl.SSLContext] = ssl.create_default_context,
) -> ssl.SSLContext:
    """A client context (from ``factory``) also trusting ``ca``, presenting ``cert``."""
    context = factory()
    if ca is not None:
        ref, pem = ca
        try:
            context.load_verify_locations(cadata=ref_text(namespace, ref, pem))
        except (ssl.SSLError, ValueError) as exc:
            raise CredentialsUnavailable(
                "InvalidCredentials",
                f"{where(namespace, ref)} is not a PEM CA bundle ({_ssl_reason(exc)})",
            ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        _load_client_cert(namespace, context, cert, key)
    return context


def _load_client_cert(
    namespace: str,
    context: ssl.SSLContext,
    cert: tuple[KeyRef, bytes],
    key: tuple[KeyRef, bytes],
) -> None:
    """``ssl`` loads a certificate chain only from files: write both to a private
    directory (0700, files 0600), load them, and remove them at once."""
    with tempfile.TemporaryDirectory(prefix="modelmonitor-tls-") as directory:
        paths = []
        for name, (_, pem) in (("tls.crt", cert), ("tls.key", key)):
            path = os.path.join(directory, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            paths.append(path)
        try:
            context.load_cert_chain(paths[0], paths[1])
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise CredentialsUnavailable(
                "InvalidCredentials",
                f"{where(namespace, cert[0])} and {key[0].key!r}: not a PEM certificate and "
                f"its private key ({_ssl_reason(exc)})",
            ) from None


def _ssl_reason(exc: Exception) -> str:
    """ssl's reason code (e.g. PEM_LIB, KEY_VALUES_MISMATCH): never file contents."""
    reason = getattr(exc, "reason", None)
    return sanitize(str(reason or type(exc).__name__), 80)
