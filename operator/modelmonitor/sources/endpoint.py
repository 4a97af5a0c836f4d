"""Where to send probe requests: the base URL of a monitor's inference endpoint.

``spec.target.endpoint`` names either a URL (used as given) or a Service and port. A
Service resolves in one of three ways:

* ``dns`` (:func:`service_dns_url`): ``http://{name}.{namespace}.svc:{port}``, the
  cluster DNS name (the default inside a cluster);
* ``endpointSlices`` (:func:`resolve_from_endpoint_slices`): asks the API for the
  Service and its EndpointSlices (``discovery.k8s.io/v1``) and picks a ready endpoint's
  address and target port - for clusters without DNS (an operator running outside the
  cluster);
* ``pods`` (:func:`resolve_from_pods`): the ready Pods that the Service's selector
  matches, their ``status.podIP`` and the target port - what the endpoints controller
  itself does, for clusters whose pod addresses EndpointSlices cannot hold (the API
  refuses loopback addresses there, and a test harness acting as a node runs pods on
  127.x addresses).

Pure: the API is reached through :class:`EndpointLookup`, which the caller passes (the
Kubernetes adapter in production, dictionaries in unit tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from modelmonitor.core.names import service_name_problem
from modelmonitor.core.spec import EndpointSpec

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Resolution = Literal["dns", "endpointSlices", "pods"]


class EndpointResolutionError(Exception):
    """No address to send requests to (no such Service or port, no ready endpoint)."""


class EndpointLookup(Protocol):
    """Read access to the API, as plain dicts (``None`` / ``[]`` when absent)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[dict[str, Any]]: ...


@dataclass(frozen=True)
class ResolvedEndpoint:
    url: str  # base URL, without a trailing slash
    source: Literal["url", "dns", "endpointSlices", "pods"]
    detail: str = ""  # e.g. which endpoint (pod) was picked


def service_dns_url(
    name: str, namespace: str, port: int, *, scheme: str = "http", domain: str | None = None
) -> str:
    """``http://{name}.{namespace}.svc:{port}``, or ``...svc.{domain}`` when given."""
    host = f"{name}.{namespace}.svc" + (f".{domain}" if domain else "")
    return f"{scheme}://{host}:{port}"


def _host(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _service_port(service: Mapping[str, Any], port: int, where: str) -> Mapping[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    for item in ports:
        if item.get("port") == port:
            return dict(item)
    have = ", ".join(str(p.get("port")) for p in ports) or "none"
    raise EndpointResolutionError(f"{where} has no port {port} (ports: {have})")


def _is_ready(endpoint: Mapping[str, Any]) -> bool:
    conditions = endpoint.get("conditions") or {}
    # The API documents an absent "ready" as unknown, to be taken as ready.
    return conditions.get("ready", True) is not False and conditions.get("terminating") is not True


def ready_addresses(
    service: Mapping[str, Any], slices: Sequence[Mapping[str, Any]], port: int
) -> list[tuple[str, int, str]]:
    """The ready ``(address, target port, who)`` triples behind ``port`` of ``service``.

    The EndpointSlice port is matched by the Service port's name (the API's rule: a
    Service port and its slices' ports share a name, empty for a single unnamed port).
    ``who`` names the backing object (``Pod/name``) when the slice says so. Sorted, so
    the choice among equal endpoints is stable.
    """
    meta = service.get("metadata") or {}
    where = f"Service {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    port_name = _service_port(service, port, where).get("name") or ""
    found: set[tuple[str, int, str]] = set()
    for slc in slices:
        if slc.get("addressType", "IPv4") not in ("IPv4", "IPv6", "FQDN"):
            continue
        numbers = [
            p.get("port")
            for p in slc.get("ports") or []
            if (p.get("name") or "") == port_name and isinstance(p.get("port"), int)
        ]
        if not numbers:
            continue
        for endpoint in slc.get("endpoints") or []:
            if not _is_ready(endpoint):
                continue
            ref = endpoint.get("targetRef") or {}
            who = f"{ref.get('kind')}/{ref.get('name')}" if ref.get("name") else ""
            for address in endpoint.get("addresses") or []:
                found.update((str(address), int(n), who) for n in numbers)
    return sorted(found)


def resolve_from_endpoint_slices(
    name: str, namespace: str, port: int, lookup: EndpointLookup, *, scheme: str = "http"
) -> ResolvedEndpoint:
    """A ready endpoint of Service ``namespace/name`` port ``port``, read from the API."""
    where = f"Service {namespace}/{name}"
    service = lookup.get("Service", namespace, name)
    if service is None:
        raise EndpointResolutionError(f"{where} does not exist")
    if (service.get("spec") or {}).get("type") == "ExternalName":
        external = service["spec"].get("externalName", "")
        return ResolvedEndpoint(f"{scheme}://{external}:{port}", "endpointSlices", "ExternalName")
    slices = lookup.list("EndpointSlice", namespace, {SERVICE_NAME_LABEL: name})
    ready = ready_addresses(service, slices, port)
    if not ready:
        total = sum(len(s.get("endpoints") or []) for s in slices)
        raise EndpointResolutionError(
            f"{where} port {port} has no ready endpoint ({total} endpoint(s) in "
            f"{len(slices)} EndpointSlice(s))"
        )
    address, target_port, who = ready[0]
    return ResolvedEndpoint(
        f"{scheme}://{_host(address)}:{target_port}",
        "endpointSlices",
        who or address,
    )


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _target_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The Service port's targetPort in ``pod``: a number, or a container port's name."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return None


def ready_pod_addresses(
    service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], port: int
) -> list[tuple[str, int, str]]:
    """The ready ``(pod IP, target port, Pod/name)`` triples behind ``port``, sorted."""
    meta = service.get("metadata") or {}
    where = f"Service {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    service_port = _service_port(service, port, where)
    found = []
    for pod in pods:
        if not _pod_ready(pod):
            continue
        target = _target_port(pod, service_port)
        if target is not None:
            name = (pod.get("metadata") or {}).get("name", "?")
            found.append((str(pod["status"]["podIP"]), target, f"Pod/{name}"))
    return sorted(found)


def resolve_from_pods(
    name: str, namespace: str, port: int, lookup: EndpointLookup, *, scheme: str = "http"
) -> ResolvedEndpoint:
    """A ready Pod behind Service ``namespace/name`` port ``port``: its IP and target port."""
    where = f"Service {namespace}/{name}"
    service = lookup.get("Service", namespace, name)
    if service is None:
        raise EndpointResolutionError(f"{where} does not exist")
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        raise EndpointResolutionError(f"{where} has no selector: no Pods to resolve")
    pods = lookup.list("Pod", namespace, selector)
    ready = ready_pod_addresses(service, pods, port)
    if not ready:
        raise EndpointResolutionError(
            f"{where} port {port} has no ready Pod ({len(pods)} Pod(s) match its selector)"
        )
    address, target_port, who = ready[0]
    return ResolvedEndpoint(f"{scheme}://{_host(address)}:{target_port}", "pods", who)


def resolve_endpoint(
    endpoint: EndpointSpec,
    namespace: str,
    *,
    resolution: Resolution = "dns",
    lookup: EndpointLookup | None = None,
    domain: str | None = None,
) -> ResolvedEndpoint:
    """The base URL for ``spec.target.endpoint`` in ``namespace``.

    ``resolution``: ``dns`` (the Service's cluster DNS name), ``endpointSlices`` or
    ``pods`` (both through ``lookup``). Raise :class:`EndpointResolutionError` when
    there is nothing to send to; a probe reports that as ``EndpointUnreachable``.
    """
    if endpoint.url is not None:
        return ResolvedEndpoint(endpoint.url.rstrip("/"), "url")
    if endpoint.service_name is None or endpoint.service_port is None:
        raise EndpointResolutionError("spec.target.endpoint names neither a url nor a service")
    # A name with a "." (kube-dns.kube-system) would leave the namespace as a DNS name.
    problem = service_name_problem(endpoint.service_name)
    if problem is not None:
        raise EndpointResolutionError(f"spec.target.endpoint.service.name {problem}")
    if resolution == "dns":
        url = service_dns_url(
            endpoint.service_name, namespace, endpoint.service_port, domain=domain
        )
        return ResolvedEndpoint(url, "dns")
    resolver = _RESOLVERS.get(resolution)
    if resolver is None:
        raise ValueError(
            f"unknown resolution {resolution!r}; expected dns, {', '.join(_RESOLVERS)}"
        )
    if lookup is None:
        raise ValueError(f"resolution {resolution!r} needs a lookup")
    return resolver(endpoint.service_name, namespace, endpoint.service_port, lookup)


_RESOLVERS = {"endpointSlices": resolve_from_endpoint_slices, "pods": resolve_from_pods}
