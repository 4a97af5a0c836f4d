"""The probe against a real MLServer serving scikit-learn models trained on iris.

MLServer speaks the Open Inference Protocol (v2) over REST; it has no KServe v1 routes,
so a v1 probe of it is a recorded 4xx (the v1 codec is covered by unit tests). The
server runs on loopback; only the endpoint-resolution test needs the control plane.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.codecs.inference import V2Options
from modelmonitor.core.dataset import CategoricalColumn, Dataset
from modelmonitor.core.outbound import OutboundPolicy
from modelmonitor.core.spec import EndpointSpec, ProbeSpec
from modelmonitor.core.stats.model_quality import classification_quality
from modelmonitor.sources.endpoint import EndpointResolutionError, resolve_endpoint
from modelmonitor.sources.probe import ProbeConfig, config_from_spec, probe, sample_rows
from modelmonitor.sources.probe_result import (
    ENDPOINT_UNREACHABLE,
    ErrorKind,
    ProbeResult,
    unreachable_result,
)
from tests.cluster.kube import KubeCluster
from tests.modelserver import ModelServer, ModelSpec, free_port

# The first test may create MLServer's environment (about two minutes on a fresh machine).
pytestmark = pytest.mark.timeout(600)

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> Dataset:
    x, y = load_iris(return_X_y=True)
    columns: dict[str, Any] = {name: x[:, i].astype(np.float64) for i, name in enumerate(FEATURES)}
    columns["species"] = y.astype(np.float64)
    return Dataset(columns)


# The model servers listen on 127.x; the operator refuses loopback unless its allowlist
# opens it, as the e2e operator's OUTBOUND_ALLOW_CIDRS does.
LOOPBACK = Outbound(OutboundPolicy.parse(["127.0.0.0/8"]))


def run(config: ProbeConfig, rows: Dataset, **kw: Any) -> ProbeResult:
    kw.setdefault("outbound", LOOPBACK)
    return asyncio.run(probe(config, rows, features=FEATURES, **kw))


def v2(server: ModelServer, model: str = "iris", **kw: Any) -> ProbeConfig:
    return ProbeConfig(**{"url": server.url, "protocol": "v2", "model": model, **kw})


def test_v2_probe_of_an_iris_sample(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 60, seed=3)
    result = run(v2(model_server, concurrency=4), rows, label_column="species")

    assert result.failure is None
    assert result.errors.total == 0
    assert (result.n_sent, result.n_requests, result.n_answered) == (60, 60, 60)
    assert isinstance(result.predictions, CategoricalColumn)
    assert set(result.predictions.categories) <= {"0", "1", "2"}
    assert len(set(result.predictions.categories)) == 3
    assert result.latencies_ms.shape == (60,)
    assert np.all(result.latencies_ms > 0)
    assert np.all(result.latencies_ms < 5000)
    assert result.labels is not None
    quality = classification_quality(result.labels, result.predictions)
    accuracy = {m.name: m.value for m in quality.metrics}["accuracy"]
    assert accuracy is not None
    assert accuracy > 0.9


def test_v2_batches_with_class_probabilities(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 50, seed=4)
    options = V2Options(outputs=("predict", "predict_proba"), probability_output="predict_proba")
    result = run(v2(model_server, batch_size=16, v2=options), rows, label_column="species")

    assert result.errors.total == 0
    assert result.n_requests == 4  # 16 + 16 + 16 + 2 rows
    assert result.n_answered == 50
    assert result.probabilities is not None
    assert result.probabilities.shape == (50, 3)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-9)
    predicted = np.argmax(result.probabilities, axis=1).astype(str)
    assert isinstance(result.predictions, CategoricalColumn)
    assert (result.predictions.labels() == predicted).mean() > 0.95


def test_v2_one_input_per_feature(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 10, seed=5)
    config = v2(model_server, batch_size=5, v2=V2Options(layout="columns"))
    result = run(config, rows, label_column="species")
    assert result.errors.total == 0
    assert result.n_answered == 10


def test_a_model_trained_on_shuffled_labels_scores_worse(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 60, seed=6)
    accuracy: dict[str, float] = {}
    for model in ("iris", "iris-shuffled"):
        result = run(v2(model_server, model, batch_size=20), rows, label_column="species")
        assert result.labels is not None
        metrics = classification_quality(result.labels, result.predictions).metrics
        value = {m.name: m.value for m in metrics}["accuracy"]
        assert value is not None
        accuracy[model] = value
    assert accuracy["iris"] > 0.9
    assert accuracy["iris-shuffled"] < 0.75


def test_wrong_model_name_is_a_recorded_4xx(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 5, seed=7)
    result = run(v2(model_server, "no-such-model", retries=3), rows)
    assert result.failure is None  # the server answered
    assert result.n_answered == 0
    assert result.errors.count(ErrorKind.HTTP_4XX) == 5
    assert result.attempts == 5  # no retries on 4xx
    assert "not found" in result.errors.messages[ErrorKind.HTTP_4XX][0]


def test_v1_is_not_served_by_mlserver(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 3, seed=8)
    config = ProbeConfig(url=model_server.url, protocol="v1", model="iris")
    result = run(config, rows)
    assert result.errors.count(ErrorKind.HTTP_4XX) == 3
    assert result.errors.messages[ErrorKind.HTTP_4XX][0].startswith("HTTP 404")


def test_timeouts_are_honoured(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 4, seed=9)
    config = v2(model_server, "iris-slow", timeout_seconds=0.3, concurrency=4, retries=2)
    started = time.monotonic()
    result = run(config, rows)
    elapsed = time.monotonic() - started

    assert result.errors.count(ErrorKind.TIMEOUT) == 4
    assert result.attempts == 4  # a timeout is not retried
    assert np.all(result.latencies_ms >= 290)
    assert np.all(result.latencies_ms < 900)  # the model would take 1000 ms
    assert elapsed < 0.95
    assert result.failure == ENDPOINT_UNREACHABLE


def test_slow_model_within_the_timeout(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 4, seed=10)
    result = run(v2(model_server, "iris-slow", timeout_seconds=3.0, concurrency=4), rows)
    assert result.errors.total == 0
    assert np.all(result.latencies_ms >= 1000)
    assert float(np.max(result.latencies_ms)) < 2500  # the four ran concurrently


def test_5xx_are_retried(model_server: ModelServer) -> None:
    rows = sample_rows(iris(), 10, seed=11)
    # iris-flaky fails every second request with 503; one retry gets each one through.
    result = run(v2(model_server, "iris-flaky", concurrency=1, retries=1), rows)
    assert result.errors.total == 0
    assert result.n_answered == 10
    assert result.attempts > 10

    without = run(v2(model_server, "iris-flaky", concurrency=1, retries=0), rows)
    assert without.errors.count(ErrorKind.HTTP_5XX) == 5
    assert without.error_ratio == pytest.approx(0.5)
    assert "injected failure" in without.errors.messages[ErrorKind.HTTP_5XX][0]


def test_nothing_listening_is_endpoint_unreachable() -> None:
    rows = sample_rows(iris(), 20, seed=12)
    config = ProbeConfig(
        url=f"http://127.0.0.1:{free_port()}", protocol="v2", model="iris", retries=1
    )
    started = time.monotonic()
    result = run(config, rows)
    assert result.failure == ENDPOINT_UNREACHABLE
    assert result.unreachable
    assert result.errors.count(ErrorKind.CONNECTION) == result.n_requests
    assert result.n_skipped > 0  # it stopped early
    assert time.monotonic() - started < 5


def test_a_stopped_server_is_endpoint_unreachable() -> None:
    rows = sample_rows(iris(), 8, seed=13)
    with ModelServer(models=(ModelSpec(name="iris"),)) as server:
        config = v2(server, retries=1, timeout_seconds=2.0)
        assert run(config, rows).n_answered == 8
        server.stop()
        result = run(config, rows)
    assert result.failure == ENDPOINT_UNREACHABLE
    assert result.n_answered == 0
    assert result.errors.count(ErrorKind.CONNECTION) == result.n_requests
    server.remove()


class KubectlLookup:
    """The API through kubectl, for endpoint resolution against the real control plane."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.cluster = cluster

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        proc = self.cluster.kubectl(
            "get", kind.lower(), name, "-n", namespace, "-o", "json", check=False
        )
        if proc.returncode != 0:
            assert "NotFound" in proc.stderr, proc.stderr
            return None
        found: dict[str, Any] = json.loads(proc.stdout)
        return found

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]:
        resource = {"EndpointSlice": "endpointslices.discovery.k8s.io", "Pod": "pods"}[kind]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        found = self.cluster.get(resource, "-n", namespace, "-l", selector)
        items: list[dict[str, Any]] = found["items"]
        return items


def test_service_without_dns_resolves_through_endpoint_slices(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    """Resolution from a real API server's Service and EndpointSlices.

    The API refuses loopback addresses in EndpointSlices, so the slice names an address
    from the documentation range (RFC 5737); nothing is ever sent to it.
    """
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {
            "ports": [
                {"name": "metrics", "port": 9090, "targetPort": 8082},
                {"name": "http", "port": 80, "targetPort": 8080},
            ]
        },
    }

    def endpoint_slice(ready: bool) -> dict[str, Any]:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "iris-manual",
                "namespace": namespace,
                "labels": {
                    "kubernetes.io/service-name": "iris",
                    "endpointslice.kubernetes.io/managed-by": "e2e.modelmonitor.io",
                },
            },
            "addressType": "IPv4",
            "ports": [
                {"name": "metrics", "port": 8082, "protocol": "TCP"},
                {"name": "http", "port": 8080, "protocol": "TCP"},
            ],
            "endpoints": [
                {"addresses": ["192.0.2.20"], "conditions": {"ready": False}},
                {
                    "addresses": ["192.0.2.30"],
                    "conditions": {"ready": ready},
                    "targetRef": {"kind": "Pod", "name": "iris-0", "namespace": namespace},
                },
            ],
        }

    kube_cluster.apply([service, endpoint_slice(ready=True)])
    lookup = KubectlLookup(kube_cluster)
    spec = EndpointSpec(protocol="v2", service_name="iris", service_port=80, model="iris")
    resolved = resolve_endpoint(spec, namespace, resolution="endpointSlices", lookup=lookup)
    assert resolved.url == "http://192.0.2.30:8080"
    assert resolved.detail == "Pod/iris-0"
    assert resolve_endpoint(spec, namespace).url == f"http://iris.{namespace}.svc:80"

    kube_cluster.apply(endpoint_slice(ready=False))
    with pytest.raises(EndpointResolutionError, match="no ready endpoint") as caught:
        resolve_endpoint(spec, namespace, resolution="endpointSlices", lookup=lookup)
    assert unreachable_result(str(caught.value)).failure == ENDPOINT_UNREACHABLE
    missing = EndpointSpec(service_name="nope", service_port=80)
    with pytest.raises(EndpointResolutionError, match="does not exist"):
        resolve_endpoint(missing, namespace, resolution="endpointSlices", lookup=lookup)


def test_service_resolves_to_a_ready_pod_on_loopback(
    kube_cluster: KubeCluster, namespace: str, model_server: ModelServer
) -> None:
    """Service -> selector -> a Ready Pod whose IP is loopback -> the real model server.

    No kubelet runs here, so the test plays the node: it reports the Pod Running and
    Ready at 127.0.0.1, where the model server listens.
    """
    port = int(model_server.url.rsplit(":", 1)[1])
    labels = {"app": "iris-model"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "iris-0", "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "mlserver",
                    "image": "mlserver:1.7.1",
                    "ports": [{"name": "http", "containerPort": port}],
                }
            ]
        },
    }
    kube_cluster.apply([service, pod])
    lookup = KubectlLookup(kube_cluster)
    spec = EndpointSpec(protocol="v2", service_name="iris", service_port=80, model="iris")
    with pytest.raises(EndpointResolutionError, match="no ready Pod"):
        resolve_endpoint(spec, namespace, resolution="pods", lookup=lookup)

    status = {
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    kube_cluster.kubectl(
        "patch", "pod", "iris-0", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    resolved = resolve_endpoint(spec, namespace, resolution="pods", lookup=lookup)
    assert resolved.url == model_server.url
    assert resolved.detail == "Pod/iris-0"

    config = config_from_spec(
        spec, ProbeSpec(batch_size=10), base_url=resolved.url, default_model="unused"
    )
    result = run(config, sample_rows(iris(), 20, seed=14), label_column="species")
    assert result.errors.total == 0
    assert result.n_answered == 20
