"""Session fixture ``iris_images``: the versioned ``iris-model:<version>`` images.

Imported by tests/e2e/conftest.py. Trains every version of
:data:`tests.e2e.model_images.IRIS_VERSIONS` once per session (a few seconds; the first
use on a fresh machine also creates MLServer's virtualenv, about two minutes) and
registers the images with the node agent, so Deployments can roll between them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.node import NodeAgent
from tests.e2e.model_images import IRIS_VERSIONS, image_name, prepare_iris_images


@pytest.fixture(scope="session")
def iris_images(
    node_agent: NodeAgent, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Image names by version: ``{"v1": "iris-model:v1", "v2-slow": ..., ...}``."""
    images = prepare_iris_images(tmp_path_factory.mktemp("iris-images"))
    for name, image in images.items():
        node_agent.register_image(name, image)
    try:
        yield {version: image_name(version) for version in IRIS_VERSIONS}
    finally:
        for name in images:
            node_agent.unregister_image(name)
