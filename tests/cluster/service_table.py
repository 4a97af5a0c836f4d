"""What the node's Service routing and cluster DNS serve, computed from Services and
EndpointSlices as the API server holds them. Pure: no sockets, no API calls.

The EndpointSlice controller has already resolved each Service port's ``targetPort``
(named container ports included) into the slice's ports, which carry the Service
port's name; so a Service port's backends are the ready addresses of its slices
together with the slice port of the same name and protocol, as kube-proxy reads them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
CLUSTER_DOMAIN = "cluster.local"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Every control plane on this machine gives its ``kubernetes`` Service 10.96.0.1:443;
# agents of concurrent test sessions would fight over it, and pods reach the API server
# through the kubeconfig the agent gives them, so it is not routed.
SKIPPED = {("default", "kubernetes")}

Backend = tuple[str, int]


@dataclass(frozen=True)
class ServiceTable:
    """The TCP routes (clusterIP, port) -> ready backends, and the cluster DNS names."""

    routes: Mapping[tuple[str, int], tuple[Backend, ...]] = field(default_factory=dict)
    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def lookup(self, name: str) -> tuple[str, ...] | None:
        """The A records of a cluster name; None when the name does not exist."""
        return self.names.get(name.lower().rstrip("."))


def is_cluster_name(name: str, domain: str = CLUSTER_DOMAIN) -> bool:
    """Whether the cluster DNS is the authority for ``name``."""
    name = name.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


def _ready(endpoint: Obj, publish_not_ready: bool) -> bool:
    # The API says an unset ``ready`` is to be taken as ready.
    conditions = endpoint.get("conditions") or {}
    return publish_not_ready or conditions.get("ready") is not False


def _ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def ready_addresses(slices: Iterable[Obj], *, publish_not_ready: bool = False) -> list[str]:
    """The ready IPv4 endpoint addresses of a Service's slices, deduplicated, in order."""
    seen: dict[str, None] = {}
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        for endpoint in piece.get("endpoints") or []:
            if _ready(endpoint, publish_not_ready):
                for address in endpoint.get("addresses") or []:
                    if _ipv4(address):
                        seen.setdefault(address, None)
    return list(seen)


def backends_for_port(
    port: Obj, slices: Iterable[Obj], *, publish_not_ready: bool = False
) -> tuple[Backend, ...]:
    """The ready (address, port) pairs a connection to the Service port ``port`` may go to."""
    name = port.get("name") or ""
    protocol = port.get("protocol") or "TCP"
    found: dict[Backend, None] = {}
    for piece in slices:
        if piece.get("addressType", "IPv4") != "IPv4":
            continue
        numbers = [
            int(p["port"])
            for p in piece.get("ports") or []
            if (p.get("name") or "") == name
            and (p.get("protocol") or "TCP") == protocol
            and p.get("port") is not None
        ]
        if not numbers:
            continue
        for address in ready_addresses([piece], publish_not_ready=publish_not_ready):
            found.setdefault((address, numbers[0]), None)
    return tuple(found)


def build_table(
    services: Iterable[Obj], slices: Iterable[Obj], domain: str = CLUSTER_DOMAIN
) -> ServiceTable:
    """The routes and names of ``services`` with the endpoints in ``slices``."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for piece in slices:
        meta = piece.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((meta.get("namespace", ""), owner), []).append(piece)
    routes: dict[tuple[str, int], tuple[Backend, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for service in services:
        meta = service.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if key in SKIPPED:
            continue
        spec = service.get("spec") or {}
        mine = by_service.get(key, [])
        publish = bool(spec.get("publishNotReadyAddresses"))
        fqdn = f"{key[1]}.{key[0]}.svc.{domain}"
        cluster_ip = spec.get("clusterIP") or ""
        if spec.get("type") == "ExternalName":
            names[fqdn] = ()  # exists, but a CNAME is not served: no A records
        elif cluster_ip == "None":
            names[fqdn] = tuple(ready_addresses(mine, publish_not_ready=publish))
            for piece in mine:
                for endpoint in piece.get("endpoints") or []:
                    host = endpoint.get("hostname")
                    addresses = [a for a in endpoint.get("addresses") or [] if _ipv4(a)]
                    if host and addresses and _ready(endpoint, publish):
                        names[f"{host}.{fqdn}"] = (addresses[0],)
        elif _ipv4(cluster_ip):
            names[fqdn] = (cluster_ip,)
            for port in spec.get("ports") or []:
                if (port.get("protocol") or "TCP") != "TCP" or port.get("port") is None:
                    continue
                backends = backends_for_port(port, mine, publish_not_ready=publish)
                if backends:
                    routes[(cluster_ip, int(port["port"]))] = backends
    return ServiceTable(routes=routes, names=names)
