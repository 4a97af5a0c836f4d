"""Services between pods on the harness node: a pod reaches another through the
Service's DNS name and ClusterIP, as it would through CoreDNS and kube-proxy.

The pods are real processes of the node agent; the name is resolved by the glibc
resolver inside the client pod, from the /etc/resolv.conf the agent shows it, against
the agent's cluster DNS; the connection goes to the ClusterIP, where the agent's relay
forwards it to the backend the EndpointSlice controller published.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import LocalImage, NodeAgent
from tests.e2e.test_node import PORT, deployment, http_get, rollout

Doc = dict[str, Any]

# A pod that answers the test's questions from inside: what the resolver says about a
# name, what a URL returns, and what its /etc files and hostname are.
CLIENT = textwrap.dedent(
    """
    import json, os, socket, time, urllib.parse, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ask(path, query):
        if path == "/resolve":
            try:
                found = socket.getaddrinfo(query["name"], None, socket.AF_INET, socket.SOCK_STREAM)
                return {"ips": sorted({a[4][0] for a in found})}
            except socket.gaierror as exc:
                return {"error": socket.EAI_NONAME == exc.errno and "NONAME" or str(exc)}
        if path == "/fetch":
            try:
                with opener.open(query["url"], timeout=5) as answer:
                    return {"status": answer.status, "body": answer.read().decode()}
            except OSError as exc:
                return {"error": repr(exc)}
        if path == "/files":
            read = lambda p: open(p).read()
            return {"resolv": read("/etc/resolv.conf"), "hosts": read("/etc/hosts"),
                    "hostname": socket.gethostname()}
        return {"error": "unknown question"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            started = time.monotonic()
            result = ask(url.path, query)
            result["seconds"] = time.monotonic() - started
            body = json.dumps(result).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
    """
)


@pytest.fixture
def services(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str, tmp_path: Path
) -> str:
    """Deployment ``web`` behind Service ``web`` (80 -> 8080) and headless ``web-pods``,
    and a ``client`` pod; returns the client pod's IP once everything is ready."""
    if not node_agent.routable or os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("pods get no routable IPs or no /etc files of their own (not root)")
    assert node_agent.pod_nameserver is not None, "no cluster DNS for pods (see the log)"
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("hello from web\n")
    (site / "version.txt").write_text("web v1\n")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    web = f"svc-test/web-{namespace}:v1"
    client = f"svc-test/client-{namespace}:v1"
    node_agent.register_image(
        web,
        LocalImage(
            entrypoint=[sys.executable, "-m", "http.server", "--bind", "$(POD_IP)"],
            cmd=[str(PORT)],
            workdir=site,
        ),
    )
    node_agent.register_image(client, LocalImage(entrypoint=[sys.executable, str(script)]))
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    manifests: list[Doc] = [
        deployment("web", web),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": ports},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-pods"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "None", "ports": ports},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "labels": {"app": "client"}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "client",
                        "image": client,
                        "readinessProbe": {
                            "httpGet": {"path": "/files", "port": PORT},
                            "periodSeconds": 1,
                        },
                    }
                ],
            },
        },
    ]
    kube_cluster.apply(manifests, "-n", namespace)
    rollout(kube_cluster, namespace, "web", node_agent)
    kube_cluster.kubectl(
        "wait", "pod/client", "-n", namespace, "--for=condition=Ready", "--timeout=30s", timeout=40
    )
    return str(kube_cluster.get("pod", "client", "-n", namespace)["status"]["podIP"])


def ask(client_ip: str, question: str, **query: str) -> Doc:
    """The client pod's answer to ``question`` (resolve, fetch, files)."""
    body = http_get(client_ip, f"/{question}?{urllib.parse.urlencode(query)}")
    assert body is not None, f"the client pod at {client_ip} does not answer"
    answer: Doc = json.loads(body)
    return answer


def test_pod_reaches_a_service_by_its_name_and_short_name(
    services: str, namespace: str, node_agent: NodeAgent
) -> None:
    files = ask(services, "files")
    assert files["resolv"] == (
        f"nameserver {node_agent.pod_nameserver}\n"
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    assert f"{services}\tclient\n" in files["hosts"]
    assert files["hostname"] == "client"
    assert files["resolv"] != Path("/etc/resolv.conf").read_text(), "the host's file changed"

    fqdn = f"web.{namespace}.svc.cluster.local"
    for url in (f"http://{fqdn}/", "http://web/", f"http://web.{namespace}/"):
        answer = ask(services, "fetch", url=url)
        assert answer.get("body") == "hello from web\n", f"{url}: {answer}"
    resolved = ask(services, "resolve", name=fqdn)
    service_ip = node_agent.services.table.lookup(fqdn) if node_agent.services else None
    assert resolved["ips"] == list(service_ip or ["?"])
    assert resolved["ips"][0].startswith("10.96.")


def test_scaling_the_backend_to_zero_refuses_and_back_to_one_serves(
    kube_cluster: KubeCluster, services: str, namespace: str, node_agent: NodeAgent
) -> None:
    url = f"http://web.{namespace}.svc.cluster.local/"
    assert ask(services, "fetch", url=url).get("body") == "hello from web\n"

    kube_cluster.kubectl("scale", "deployment/web", "--replicas=0", "-n", namespace)

    def refused() -> Doc | None:
        answer = ask(services, "fetch", url=url)
        return answer if "error" in answer else None

    failed = wait_for(refused, timeout=30, what="connections to web refused at 0 replicas")
    assert "Connection refused" in failed["error"], failed
    assert failed["seconds"] < 1.0, f"a refused connection took {failed['seconds']:.2f}s"

    started = time.monotonic()
    kube_cluster.kubectl("scale", "deployment/web", "--replicas=1", "-n", namespace)

    def served() -> Doc | None:
        answer = ask(services, "fetch", url=url)
        return answer if answer.get("body") == "hello from web\n" else None

    wait_for(served, timeout=40, what="web served again at 1 replica")
    assert time.monotonic() - started < 40


def test_headless_service_resolves_to_the_pod_and_unknown_names_do_not(
    kube_cluster: KubeCluster, services: str, namespace: str
) -> None:
    pods = kube_cluster.get("pods", "-n", namespace, "-l", "app=web")["items"]
    pod_ips = sorted(p["status"]["podIP"] for p in pods if p["status"].get("podIP"))
    headless = ask(services, "resolve", name=f"web-pods.{namespace}.svc.cluster.local")
    assert headless["ips"] == pod_ips
    assert ask(services, "resolve", name="web-pods")["ips"] == pod_ips

    # ndots:5 makes the resolver try the search path first: every try is answered
    # NXDOMAIN by the node's DNS at once, none waits for a timeout.
    for name in (f"nope.{namespace}.svc.cluster.local", "nope"):
        unknown = ask(services, "resolve", name=name)
        assert unknown["error"] == "NONAME", unknown
        assert unknown["seconds"] < 0.5, f"{name}: NXDOMAIN took {unknown['seconds']:.2f}s"
