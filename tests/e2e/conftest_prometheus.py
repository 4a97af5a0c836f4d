"""The ``prometheus`` session fixture: one real Prometheus for the test session.

It scrapes itself every second; tests add their own targets with
``prometheus.add_target(ScrapeTarget(...))`` (the server reloads its configuration).
A test that stops the server must start it again before it ends. Needs no cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.prometheus import PrometheusServer, reap_orphans


@pytest.fixture(scope="session")
def prometheus(request: pytest.FixtureRequest) -> Iterator[PrometheusServer]:
    reap_orphans()
    server = PrometheusServer(f"session-{os.getpid()}")
    server.start()
    try:
        yield server
    finally:
        # After failures keep the TSDB and log (.state/prometheus/) for a look; the
        # next session's reap_orphans removes them.
        if request.session.testsfailed:
            server.stop()
        else:
            server.destroy()
