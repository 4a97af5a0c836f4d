"""The credentials of ``spec.data.payloadLog.kafka``: TLS and SASL, read from Secrets.

Read from the monitor's namespace each time the feed opens a consumer (a rotated
password or certificate is used from the next connection on), each value held to a size
cap, and turned into kafka-python's settings: an ``ssl_context`` (the CA given as PEM
data, the client certificate loaded through the 0600 files of
:func:`~modelmonitor.sources.prometheus_auth.tls_context`, removed at once) and the SASL
user. What is read leaves this module only inside those settings; messages name the
Secret, the key and the spec field, never a value.
"""

from __future__ import annotations

import ssl
from typing import Any

from modelmonitor.core.spec import KafkaSpec, KeyRef
from modelmonitor.sources.endpoint import EndpointLookup
from modelmonitor.sources.prometheus_auth import (
    CredentialsUnavailable,
    read_ref,
    ref_text,
    tls_context,
    where,
)

MAX_PEM_BYTES = 256 * 1024  # a CA bundle, a certificate chain or a private key
MAX_SASL_BYTES = 4096  # a user name or a password


class _ServerNameContext(ssl.SSLContext):
    """A client context that verifies every broker against one fixed name
    (``tlsConfig.serverName``) instead of the host kafka-python connects to."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def _named_context(server_name: str) -> ssl.SSLContext:
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    return context


def load_kafka_auth(lookup: EndpointLookup, namespace: str, spec: KafkaSpec) -> dict[str, Any]:
    """kafka-python's connection settings for ``spec`` (blocking: reads the Secrets).

    Raises :class:`CredentialsUnavailable` (SecretNotFound, ConfigMapNotFound,
    LookupFailed, InvalidCredentials) naming the field, never a value."""
    read = {ref: _read(lookup, namespace, ref) for ref in spec.refs()}
    config: dict[str, Any] = {"security_protocol": spec.security_protocol}
    tls = spec.tls
    if tls is not None:
        name = tls.server_name
        context = tls_context(
            namespace,
            ca=(tls.ca, read[tls.ca]) if tls.ca is not None else None,
            cert=(tls.cert, read[tls.cert]) if tls.cert is not None else None,
            key=(tls.key, read[tls.key]) if tls.key is not None else None,
            insecure=False,
            factory=(lambda: _named_context(name)) if name else ssl.create_default_context,
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        config["ssl_context"] = context
    sasl = spec.sasl
    if sasl is not None:
        user = ref_text(namespace, sasl.username, read[sasl.username])
        password = ref_text(namespace, sasl.password, read[sasl.password])
        for ref, text in ((sasl.username, user), (sasl.password, password)):
            if not text:
                raise CredentialsUnavailable(
                    "InvalidCredentials", f"{where(namespace, ref)} is empty"
                )
        config["sasl_mechanism"] = sasl.mechanism
        config["sasl_plain_username"] = user
        config["sasl_plain_password"] = password
    return config


def _read(lookup: EndpointLookup, namespace: str, ref: KeyRef) -> bytes:
    value = read_ref(lookup, namespace, ref)
    cap = MAX_SASL_BYTES if ref.field.endswith((".username", ".password")) else MAX_PEM_BYTES
    if len(value) > cap:
        raise CredentialsUnavailable(
            "InvalidCredentials", f"{where(namespace, ref)} is larger than {cap} bytes"
        )
    return value
