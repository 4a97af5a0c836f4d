"""Endpoint resolution: URL, Service DNS name, and a ready endpoint from EndpointSlices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from modelmonitor.core.spec import EndpointSpec
from modelmonitor.sources.endpoint import (
    SERVICE_NAME_LABEL,
    EndpointResolutionError,
    ready_addresses,
    ready_pod_addresses,
    resolve_endpoint,
    resolve_from_endpoint_slices,
    resolve_from_pods,
    service_dns_url,
)

NS = "ml"


def service(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "namespace": NS}, "spec": {"ports": ports, **spec}}


def endpoint(
    address: str, *, ready: bool | None = True, terminating: bool | None = None, pod: str = ""
) -> dict[str, Any]:
    conditions: dict[str, bool] = {}
    if ready is not None:
        conditions["ready"] = ready
    if terminating is not None:
        conditions["terminating"] = terminating
    item: dict[str, Any] = {"addresses": [address], "conditions": conditions}
    if pod:
        item["targetRef"] = {"kind": "Pod", "name": pod, "namespace": NS}
    return item


def endpoint_slice(
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]],
    address_type: str = "IPv4",
    service_name: str = "iris",
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service_name}-abcde", "labels": {SERVICE_NAME_LABEL: service_name}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }


class DictLookup:
    """Objects by (kind, namespace, name); lists filtered by labels, as the API would."""

    def __init__(self, objects: Sequence[dict[str, Any]]) -> None:
        self.objects = objects
        self.listed: list[tuple[str, str, Mapping[str, str]]] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        for obj in self.objects:
            meta = obj.get("metadata", {})
            if (obj.get("kind"), meta.get("namespace", NS), meta.get("name")) == (
                kind,
                namespace,
                name,
            ):
                return obj
        return None

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]:
        self.listed.append((kind, namespace, labels))
        return [
            obj
            for obj in self.objects
            if obj.get("kind") == kind
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
        ]


def svc_object(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"kind": "Service", **service(ports, **spec)}


HTTP_PORT = [{"name": "http", "port": 80, "targetPort": 8080}]


def test_url_is_used_as_given() -> None:
    resolved = resolve_endpoint(EndpointSpec(url="http://models.example:9000/"), NS)
    assert resolved.url == "http://models.example:9000"
    assert resolved.source == "url"


def test_service_resolves_to_cluster_dns() -> None:
    spec = EndpointSpec(service_name="iris", service_port=8080)
    assert resolve_endpoint(spec, NS).url == "http://iris.ml.svc:8080"
    assert service_dns_url("iris", NS, 80, domain="cluster.local") == (
        "http://iris.ml.svc.cluster.local:80"
    )


@pytest.mark.parametrize("resolution", ["dns", "endpointSlices", "pods"])
@pytest.mark.parametrize("name", ["kube-dns.kube-system", "../../kube-system/x", "Iris", ""])
def test_a_service_name_that_leaves_the_namespace_resolves_to_nothing(
    resolution: Any, name: str
) -> None:
    """A spec that bypassed the parser: the name never becomes a host or an API path."""
    spec = EndpointSpec(service_name=name, service_port=53)
    with pytest.raises(EndpointResolutionError, match=r"spec\.target\.endpoint\.service\.name"):
        resolve_endpoint(spec, NS, resolution=resolution, lookup=None)


def test_endpoint_slices_give_a_ready_pod_and_the_target_port() -> None:
    lookup = DictLookup(
        [
            svc_object(HTTP_PORT),
            endpoint_slice(
                [
                    endpoint("127.0.10.3", ready=False, pod="iris-0"),
                    endpoint("127.0.10.2", pod="iris-1"),
                ],
                [{"name": "http", "port": 8080, "protocol": "TCP"}],
            ),
            endpoint_slice(
                [endpoint("127.0.99.1")], [{"name": "http", "port": 1}], service_name="other"
            ),
        ]
    )
    spec = EndpointSpec(service_name="iris", service_port=80)
    resolved = resolve_endpoint(spec, NS, resolution="endpointSlices", lookup=lookup)
    assert resolved.url == "http://127.0.10.2:8080"
    assert resolved.source == "endpointSlices"
    assert resolved.detail == "Pod/iris-1"
    assert lookup.listed == [("EndpointSlice", NS, {SERVICE_NAME_LABEL: "iris"})]


def test_ports_are_matched_by_name() -> None:
    svc = service(
        [{"name": "metrics", "port": 9090, "targetPort": 8082}, {"name": "http", "port": 80}]
    )
    slices = [
        endpoint_slice(
            [endpoint("10.1.0.5"), endpoint("10.1.0.4")],
            [{"name": "metrics", "port": 8082}, {"name": "http", "port": 8080}],
        )
    ]
    assert ready_addresses(svc, slices, 80) == [("10.1.0.4", 8080, ""), ("10.1.0.5", 8080, "")]
    assert ready_addresses(svc, slices, 9090)[0][1] == 8082


def test_unnamed_single_port_and_unknown_readiness() -> None:
    svc = service([{"port": 8080}])
    slices = [endpoint_slice([endpoint("10.0.0.1", ready=None)], [{"port": 8080}])]
    assert ready_addresses(svc, slices, 8080) == [("10.0.0.1", 8080, "")]


def test_terminating_and_unready_endpoints_are_skipped() -> None:
    svc = service(HTTP_PORT)
    slices = [
        endpoint_slice(
            [endpoint("10.0.0.1", terminating=True), endpoint("10.0.0.2", ready=False)],
            [{"name": "http", "port": 8080}],
        )
    ]
    assert ready_addresses(svc, slices, 80) == []
    lookup = DictLookup([svc_object(HTTP_PORT), *slices])
    with pytest.raises(EndpointResolutionError, match="no ready endpoint"):
        resolve_from_endpoint_slices("iris", NS, 80, lookup)


def test_ipv6_addresses_are_bracketed() -> None:
    lookup = DictLookup(
        [
            svc_object(HTTP_PORT),
            endpoint_slice([endpoint("fd00::5")], [{"name": "http", "port": 8080}], "IPv6"),
        ]
    )
    assert resolve_from_endpoint_slices("iris", NS, 80, lookup).url == "http://[fd00::5]:8080"


def test_missing_service_port_and_slices() -> None:
    with pytest.raises(EndpointResolutionError, match=r"Service ml/iris does not exist"):
        resolve_from_endpoint_slices("iris", NS, 80, DictLookup([]))
    lookup = DictLookup([svc_object(HTTP_PORT)])
    with pytest.raises(EndpointResolutionError, match=r"has no port 81 \(ports: 80\)"):
        resolve_from_endpoint_slices("iris", NS, 81, lookup)
    with pytest.raises(EndpointResolutionError, match=r"0 endpoint\(s\) in 0 EndpointSlice"):
        resolve_from_endpoint_slices("iris", NS, 80, lookup)


def test_external_name_service() -> None:
    lookup = DictLookup([svc_object(HTTP_PORT, type="ExternalName", externalName="m.example")])
    assert resolve_from_endpoint_slices("iris", NS, 80, lookup).url == "http://m.example:80"


def test_slice_resolution_needs_a_lookup_and_a_known_mode() -> None:
    spec = EndpointSpec(service_name="iris", service_port=80)
    with pytest.raises(ValueError, match="needs a lookup"):
        resolve_endpoint(spec, NS, resolution="endpointSlices")
    with pytest.raises(ValueError, match="needs a lookup"):
        resolve_endpoint(spec, NS, resolution="pods")
    with pytest.raises(ValueError, match="unknown resolution"):
        resolve_endpoint(spec, NS, resolution="mdns")  # type: ignore[arg-type]
    with pytest.raises(EndpointResolutionError, match="neither a url nor a service"):
        resolve_endpoint(EndpointSpec(), NS)


# --- pods -------------------------------------------------------------------------------


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": labels or {"app": "iris"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "server", "ports": ports or []}]},
        "status": status,
    }


SELECTOR = {"app": "iris"}


def test_pods_resolution_picks_a_ready_pod_and_the_target_port() -> None:
    lookup = DictLookup(
        [
            svc_object(HTTP_PORT, selector=SELECTOR),
            pod("iris-a", "127.0.10.9", ready=False),
            pod("iris-b", "127.0.10.5"),
            pod("iris-c", "127.0.10.4", deleting=True),
            pod("iris-d", None, phase="Pending", ready=False),
            pod("other", "127.0.11.1", labels={"app": "other"}),
        ]
    )
    spec = EndpointSpec(service_name="iris", service_port=80)
    resolved = resolve_endpoint(spec, NS, resolution="pods", lookup=lookup)
    assert resolved.url == "http://127.0.10.5:8080"
    assert resolved.source == "pods"
    assert resolved.detail == "Pod/iris-b"
    assert lookup.listed == [("Pod", NS, SELECTOR)]


def test_pods_named_target_port_and_default_target() -> None:
    svc = service([{"name": "http", "port": 80, "targetPort": "web"}, {"port": 9000}])
    pods = [pod("a", "10.0.0.7", ports=[{"name": "web", "containerPort": 8081}])]
    assert ready_pod_addresses(svc, pods, 80) == [("10.0.0.7", 8081, "Pod/a")]
    assert ready_pod_addresses(svc, pods, 9000) == [("10.0.0.7", 9000, "Pod/a")]
    assert ready_pod_addresses(svc, [pod("b", "10.0.0.8")], 80) == []  # no port named web


def test_pods_resolution_failures_say_why() -> None:
    with pytest.raises(EndpointResolutionError, match="has no selector"):
        resolve_from_pods("iris", NS, 80, DictLookup([svc_object(HTTP_PORT)]))
    lookup = DictLookup(
        [svc_object(HTTP_PORT, selector=SELECTOR), pod("a", "10.0.0.1", ready=False)]
    )
    with pytest.raises(EndpointResolutionError, match=r"no ready Pod \(1 Pod\(s\) match"):
        resolve_from_pods("iris", NS, 80, lookup)
    with pytest.raises(EndpointResolutionError, match="does not exist"):
        resolve_from_pods("nope", NS, 80, lookup)
