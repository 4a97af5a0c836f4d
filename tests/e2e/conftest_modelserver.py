"""Session fixture ``model_server``: a real MLServer with scikit-learn models trained on iris.

Started once per test session on free loopback ports and stopped at its end. The first
use on a fresh machine also creates MLServer's own virtual environment
(``.state/venvs/mlserver``, about two minutes with downloads; ``python -m tests.modelserver
venv`` does it ahead of time). The server serves :data:`tests.modelserver.TEST_MODELS`:
``iris`` (the real model), ``iris-slow`` (answers after 1 s), ``iris-flaky`` (every second
request gets HTTP 503) and ``iris-shuffled`` (trained on shuffled labels).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.modelserver import SERVERS_DIR, TEST_MODELS, ModelServer


@pytest.fixture(scope="session")
def model_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server = ModelServer(models=TEST_MODELS, workdir=SERVERS_DIR / f"e2e-{os.getpid()}")
    server.start(timeout=180.0)
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed == 0:
            server.remove()  # after failures the log stays in the workdir for a look
