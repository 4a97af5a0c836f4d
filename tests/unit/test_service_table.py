"""Which backends a ClusterIP port routes to and which names the cluster DNS serves
(tests/cluster/service_table.py), and the per-pod resolv.conf/hosts (pod_dns.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.pod_dns import (
    etc_hosts,
    isolated_argv,
    isolation_problem,
    pod_hostname,
    resolv_conf,
)
from tests.cluster.service_table import (
    backends_for_port,
    build_table,
    is_cluster_name,
    ready_addresses,
)

Doc = dict[str, Any]


def service(name: str, cluster_ip: str, ports: list[Doc], ns: str = "ns", **spec: Any) -> Doc:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "ports": ports, **spec},
    }


def endpoint(ip: str, ready: bool | None = True, hostname: str = "") -> Doc:
    conditions = {} if ready is None else {"ready": ready}
    return {
        "addresses": [ip],
        "conditions": conditions,
        **({"hostname": hostname} if hostname else {}),
    }


def piece(svc: str, endpoints: list[Doc], ports: list[Doc], ns: str = "ns", **extra: Any) -> Doc:
    return {
        "metadata": {
            "name": f"{svc}-{len(endpoints)}",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
        **extra,
    }


def test_port_matches_by_name_and_protocol() -> None:
    slices = [
        piece(
            "web",
            [endpoint("10.244.1.2"), endpoint("10.244.1.3", ready=False)],
            [
                {"name": "http", "port": 8080, "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "protocol": "TCP"},
                {"name": "http", "port": 5353, "protocol": "UDP"},
            ],
        )
    ]
    assert backends_for_port({"name": "http", "port": 80}, slices) == (("10.244.1.2", 8080),)
    assert backends_for_port({"name": "metrics", "port": 9}, slices) == (("10.244.1.2", 9090),)
    assert backends_for_port({"name": "other", "port": 1}, slices) == ()
    published = backends_for_port({"name": "http"}, slices, publish_not_ready=True)
    assert published == (("10.244.1.2", 8080), ("10.244.1.3", 8080))


def test_unnamed_port_unset_ready_and_duplicates() -> None:
    ports = [{"port": 8080}]
    slices = [
        piece("web", [endpoint("10.244.1.2", ready=None)], ports),
        # The same endpoint in a second slice (while the controller moves it) counts once.
        piece("web", [endpoint("10.244.1.2"), {"addresses": ["fd00::1"]}], ports),
        piece("web", [endpoint("10.244.1.9")], ports, addressType="IPv6"),
    ]
    assert backends_for_port({"port": 80, "targetPort": 8080}, slices) == (("10.244.1.2", 8080),)
    assert ready_addresses(slices) == ["10.244.1.2"]


def test_table_routes_and_names() -> None:
    services = [
        service("web", "10.96.5.6", [{"port": 80, "targetPort": 8080}]),
        service("idle", "10.96.5.7", [{"port": 80}]),
        service("db", "None", [{"port": 5432}]),
        service("udp", "10.96.5.8", [{"port": 53, "protocol": "UDP"}]),
        service("ext", "", [], type="ExternalName", externalName="example.org"),
        service("kubernetes", "10.96.0.1", [{"name": "https", "port": 443}], ns="default"),
    ]
    slices = [
        piece("web", [endpoint("10.244.1.2"), endpoint("10.244.1.4")], [{"port": 8080}]),
        piece("idle", [endpoint("10.244.1.5", ready=False)], [{"port": 80}]),
        piece("db", [endpoint("10.244.1.7", hostname="db-0"), endpoint("10.244.1.8", False)], []),
        piece("udp", [endpoint("10.244.1.9")], [{"port": 53, "protocol": "UDP"}]),
        piece(
            "kubernetes", [endpoint("10.0.0.1")], [{"name": "https", "port": 6443}], ns="default"
        ),
        piece("web", [endpoint("10.244.9.9")], [{"port": 8080}], ns="other"),
    ]
    table = build_table(services, slices)
    # No ready endpoint, UDP, and the kubernetes Service: no route (connections refused).
    assert table.routes == {("10.96.5.6", 80): (("10.244.1.2", 8080), ("10.244.1.4", 8080))}
    assert table.lookup("web.ns.svc.cluster.local.") == ("10.96.5.6",)
    assert table.lookup("WEB.ns.svc.cluster.local") == ("10.96.5.6",)
    assert table.lookup("idle.ns.svc.cluster.local") == ("10.96.5.7",)
    assert table.lookup("db.ns.svc.cluster.local") == ("10.244.1.7",)
    assert table.lookup("db-0.db.ns.svc.cluster.local") == ("10.244.1.7",)
    assert table.lookup("ext.ns.svc.cluster.local") == ()
    assert table.lookup("nope.ns.svc.cluster.local") is None
    assert table.lookup("web.other.svc.cluster.local") is None  # no such Service there
    assert table.lookup("kubernetes.default.svc.cluster.local") is None


def test_cluster_names() -> None:
    assert is_cluster_name("web.ns.svc.cluster.local.")
    assert is_cluster_name("cluster.local")
    assert not is_cluster_name("example.org")
    assert not is_cluster_name("notcluster.local")


def pod(**spec: Any) -> Doc:
    return {"metadata": {"name": "p-1", "namespace": "team"}, "spec": spec}


def test_resolv_conf_cluster_first() -> None:
    text = resolv_conf(pod(), "10.244.3.1")
    assert text == (
        "nameserver 10.244.3.1\n"
        "search team.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    merged = resolv_conf(
        pod(dnsConfig={"searches": ["corp"], "options": [{"name": "ndots", "value": "2"}]}),
        "10.244.3.1",
    )
    assert merged is not None
    assert "cluster.local corp\n" in merged
    assert "ndots:2" in merged


def test_resolv_conf_other_policies() -> None:
    host = "nameserver 10.255.255.53\nsearch example.org\noptions edns0\n"
    assert resolv_conf(pod(dnsPolicy="Default"), "10.244.3.1", host) == host
    assert resolv_conf(pod(hostNetwork=True), "10.244.3.1", host) is None
    with_host_net = resolv_conf(
        pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), "10.244.3.1", host
    )
    assert with_host_net is not None
    assert with_host_net.startswith("nameserver 10.244.3.1\n")
    none = resolv_conf(
        pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"]}), "10.244.3.1", host
    )
    assert none == "nameserver 1.1.1.1\n"


def test_etc_hosts() -> None:
    text = etc_hosts(
        pod(
            hostname="w",
            subdomain="grp",
            hostAliases=[{"ip": "10.1.1.1", "hostnames": ["a", "b"]}],
        ),
        "10.244.3.7",
    )
    assert "10.244.3.7\tw.grp.team.svc.cluster.local w\n" in text
    assert "10.1.1.1\ta b\n" in text
    assert "127.0.0.1\tlocalhost\n" in etc_hosts(pod(), "10.244.3.7")
    assert "10.244.3.7\tp-1\n" in etc_hosts(pod(), "10.244.3.7")
    long_name = {"metadata": {"name": "x" * 62 + "-abc", "namespace": "n"}, "spec": {}}
    assert pod_hostname(long_name) == "x" * 62
    assert pod_hostname(pod(hostname="h")) == "h"


def test_isolated_argv_keeps_a_missing_program_an_error(tmp_path: Path) -> None:
    files = (tmp_path / "resolv.conf", tmp_path / "hosts")
    argv = isolated_argv(["sh", "-c", "true"], *files, hostname="w-0", path="/usr/bin:/bin")
    assert argv[-3:] == ["sh", "-c", "true"]
    assert argv[-7:-3] == [*(str(f) for f in files), "w-0", "0"]
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        isolated_argv(["no-such-program"], *files, path="/usr/bin:/bin")
    with pytest.raises(FileNotFoundError, match=r"missing\.py"):
        isolated_argv(["./missing.py"], *files, cwd=tmp_path)


def test_isolated_argv_binds_a_termination_message_file(tmp_path: Path) -> None:
    """A file of ``binds`` is what the container sees at its path, in its namespace only."""
    if isolation_problem(tmp_path / "probe") is not None:
        pytest.skip("no mount namespaces here")
    files = (tmp_path / "resolv.conf", tmp_path / "hosts")
    for f in files:
        f.write_text("# x\n")
    message = tmp_path / "run.termination-log"
    message.write_bytes(b"")
    target = tmp_path / "termination-log"  # created as the mount point
    argv = isolated_argv(
        ["sh", "-c", f"printf done > {target}"],
        *files,
        path="/usr/bin:/bin",
        binds=[(message, str(target))],
    )
    subprocess.run(argv, check=True, timeout=10)
    assert message.read_text() == "done"
    assert target.read_text() == ""  # outside the namespace: only the empty mount point
