"""The Kafka client's edge: a consumer whose every connection goes through the fence.

kafka-python (the ``kafka`` extra, pure Python) opens its own sockets: to the bootstrap
addresses a monitor names, then to every broker the cluster's metadata advertises. A
hostile broker could advertise ``169.254.169.254:80`` or the node's loopback; so each
connection, bootstrap or advertised, is checked by :meth:`Outbound.check` on the exact
address ``connect`` gets (after name resolution, as for HTTP). The hook is kafka-python's
socket-factory registry (the class it picks by ``proxy_url`` scheme): our factory takes
the scheme ``modelmonitor-fence`` and never proxies, it only refuses.

kafka-python says why a TLS handshake or a SASL login failed only in its log (the
consumer raises "Unable to bootstrap"); a handler on its ``kafka.net`` loggers keeps the
last telling failure of each client (by its IO thread, ``kafka-io-<client_id>``), so
the monitor's status can say "SASL authentication failed" instead of a timeout.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import threading
from collections.abc import Sequence
from typing import Any

from modelmonitor.adapters.outbound import FenceError, Outbound
from modelmonitor.core.kafka import connection_failure
from modelmonitor.core.outbound import sanitize

FENCE_SCHEME = "modelmonitor-fence"
# Bounded reads: a poll returns at most this many records, a fetch at most these bytes.
MAX_POLL_RECORDS = 500
MAX_PARTITION_FETCH_BYTES = 1 << 20
FETCH_MAX_BYTES = 4 << 20

_fences: dict[str, Outbound] = {}
_refused: dict[str, str] = {}  # consumer key -> the last refusal, for status
_fences_lock = threading.Lock()
_ids = itertools.count(1)
_IO_THREAD = "kafka-io-"  # kafka-python's IO thread is named kafka-io-<client_id>
_failures: dict[str, str] = {}  # client_id -> the last telling connection failure
MAX_FAILURE_CHARS = 300


class _FailureLog(logging.Handler):
    """Keeps, per client, the last connection failure kafka-python logged that says
    something (SASL, TLS): see :func:`modelmonitor.core.kafka.connection_failure`."""

    def emit(self, record: logging.LogRecord) -> None:
        thread = record.threadName or ""
        if not thread.startswith(_IO_THREAD):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                text = connection_failure(type(arg).__name__, str(arg))
                if text is not None:
                    with _fences_lock:
                        _failures[thread[len(_IO_THREAD) :]] = sanitize(text, MAX_FAILURE_CHARS)


_failure_log = _FailureLog(logging.WARNING)


def available() -> bool:
    """Whether the ``kafka`` extra (kafka-python) is installed."""
    return importlib.util.find_spec("kafka") is not None


def _register_factory() -> None:
    from kafka.net.inet import KafkaNetSocket  # the kafka extra

    net_log = logging.getLogger("kafka.net")
    if _failure_log not in net_log.handlers:
        net_log.addHandler(_failure_log)

    if FENCE_SCHEME in KafkaNetSocket._registry:
        return

    class FencedSocket(KafkaNetSocket):  # type: ignore[misc]
        """kafka-python's plain sockets, each address checked before it connects."""

        SCHEMES = (FENCE_SCHEME,)

        def __init__(self, proxy_url: str | None = None) -> None:
            super().__init__()
            key = self._key = (proxy_url or "").partition("://")[2]
            with _fences_lock:
                self._fence = _fences.get(key)

        def connect_ex(self, sock: Any, sockaddr: Any) -> int:
            if self._fence is None:  # a consumer we did not open: refuse, never pass
                raise OSError("no outbound fence for this Kafka connection")
            try:
                self._fence.check(str(sockaddr[0]), int(sockaddr[1]))
            except OSError as exc:
                with _fences_lock:
                    _refused[self._key] = str(exc)
                raise
            return int(sock.connect_ex(sockaddr))


def open_consumer(
    fence: Outbound,
    servers: Sequence[tuple[str, int]],
    group: str,
    client_id: str,
    **config: Any,
) -> Any:
    """A KafkaConsumer (not yet subscribed) for ``group``, its connections fenced, its
    offsets committed by the caller only (auto-commit off), reads bounded."""
    from kafka import KafkaConsumer  # the kafka extra

    _register_factory()
    key = str(next(_ids))
    with _fences_lock:
        _fences[key] = fence
        _failures.pop(client_id, None)
    bootstrap = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in servers]
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_POLL_RECORDS,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES,
            proxy_url=f"{FENCE_SCHEME}://{key}",
            **config,
        )
    except Exception as exc:
        with _fences_lock:
            _fences.pop(key, None)
            refused = _refused.pop(key, None)
        if refused is not None:
            raise FenceError(refused) from exc
        raise
    consumer._modelmonitor_fence_key = key
    return consumer


def rebalance_listener(assigned: Any, revoked: Any) -> Any:
    """A kafka-python ConsumerRebalanceListener calling ``assigned(partitions)`` and
    ``revoked(partitions)`` (in the polling thread)."""
    from kafka import ConsumerRebalanceListener  # the kafka extra

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_assigned(self, partitions: Any) -> None:
            assigned(partitions)

        def on_partitions_revoked(self, partitions: Any) -> None:
            revoked(partitions)

    return Listener()


def last_failure(client_id: str) -> str | None:
    """Why the last connection of client ``client_id`` failed (SASL, TLS), if known."""
    with _fences_lock:
        return _failures.get(client_id)


def forget_failure(client_id: str) -> None:
    """Drop what was kept for ``client_id`` (its consumer is gone for good)."""
    with _fences_lock:
        _failures.pop(client_id, None)


def last_refusal(consumer: Any) -> str | None:
    """The last connection of this consumer the fence refused (its message), if any."""
    with _fences_lock:
        return _refused.get(getattr(consumer, "_modelmonitor_fence_key", ""))


def close_consumer(consumer: Any) -> None:
    """Close without committing (the feed commits what reached the window itself)."""
    try:
        consumer.close(autocommit=False)
    finally:
        with _fences_lock:
            key = getattr(consumer, "_modelmonitor_fence_key", "")
            _fences.pop(key, None)
            _refused.pop(key, None)
