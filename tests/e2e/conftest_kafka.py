"""The ``kafka`` session fixture: one real Apache Kafka broker (KRaft, one node) for the
test session, its jars fetched once with Maven (tests/kafka_broker.py). Needs no cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kafka_broker import KafkaBroker, reap_orphans


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaBroker]:
    reap_orphans()
    broker = KafkaBroker(f"session-{os.getpid()}")
    broker.start()
    try:
        yield broker
    finally:
        # After failures keep the log (.state/kafka/) for a look; the next session's
        # reap_orphans removes it.
        if request.session.testsfailed:
            broker.stop()
        else:
            broker.destroy()
