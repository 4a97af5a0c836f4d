"""Static checks of how the operator ships: Dockerfile, .dockerignore, manifests/, chart.

No cluster and no container engine needed: the files are parsed and their security- and
wiring-relevant properties asserted. tests/e2e/test_helm.py sends the same manifests
and the rendered chart to a real API server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor import __version__

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "modelmonitor"
NONROOT_UID = 65532

Doc = dict[str, Any]


# -- Dockerfile ------------------------------------------------------------------------------
@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (KEYWORD, arguments) instructions."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)",
                lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)),
                words[0],
            )
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, got {keyword}"
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())[1]


def test_dockerfile_is_multi_stage_on_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert builder.name == "builder"
    assert final.base == "python:3.11-slim"
    assert any(re.search(r"\bpip install\b.*(\s|^)\.($|\s)", run) for run in builder.args("RUN"))
    copies = final.args("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], "final stage copies only the venv"


def test_dockerfile_final_stage_runs_as_numeric_non_root(stages: list[Stage]) -> None:
    users = stages[-1].args("USER")
    assert users, "final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "USER must be numeric so runAsNonRoot can verify it"
    assert int(uid) == NONROOT_UID
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    final_runs = " ".join(stages[-1].args("RUN"))
    for tool in ("build-essential", "gcc", "g++", "make", "apt-get install", "pip install"):
        assert tool not in final_runs, f"final stage installs {tool!r}"
    # The builder needs none either: it installs binary wheels only.
    for stage in stages:
        assert "build-essential" not in " ".join(stage.args("RUN"))
    installs = [run for run in stages[0].args("RUN") if "pip install" in run]
    assert all("--only-binary=:all:" in run or "--no-deps" in run for run in installs)


def test_dockerfile_works_with_read_only_root_filesystem(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env


def test_dockerfile_entrypoint_runs_the_operator(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.args("ENTRYPOINT") == ['["modelmonitor"]']
    assert final.args("CMD") == ['["run"]']


def test_dockerignore_allows_only_the_package_sources() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "operator"} <= allowed
    assert not allowed & {".venv", ".git", "tests", ".state"}


def test_every_module_directory_is_a_package_so_the_image_gets_it() -> None:
    """``pip install .`` finds packages by their __init__.py (tool.setuptools.packages.find);
    a folder of modules without one would be silently missing from the image."""
    package = ROOT / "operator" / "modelmonitor"
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        if directory.name == "__pycache__":
            continue
        if any(directory.glob("*.py")):
            assert (directory / "__init__.py").is_file(), f"{directory} lacks __init__.py"
    assert not (ROOT / "operator" / "__init__.py").exists(), "operator/ must not be importable"


# -- manifests/ ------------------------------------------------------------------------------
def load_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


INSTALL_FILES = ("install.yaml", "install-namespaced.yaml")


@pytest.fixture(scope="module", params=INSTALL_FILES)
def install(request: pytest.FixtureRequest) -> list[Doc]:
    return load_docs(MANIFESTS / request.param)


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def assert_restricted_pod(pod: Doc) -> None:
    """The pod meets the "restricted" Pod Security Standard, and then some."""
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == NONROOT_UID
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod["containers"]:
        csc = container["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["runAsNonRoot"] is True
        assert csc["capabilities"] == {"drop": ["ALL"]}
        assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert csc.get("privileged", False) is False
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get("/tmp") in tmp_volumes, "/tmp must be a writable emptyDir"
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            http = container[probe]["httpGet"]
            assert http["path"] == "/healthz"
            assert http["port"] == "health"
        env = env_of(container)
        assert ports == {
            "metrics": int(env["METRICS_PORT"]),
            "health": int(env["HEALTH_PORT"]),
            "payload": int(env["PAYLOAD_PORT"]),
        }


def test_manifests_deployment_is_locked_down(install: list[Doc]) -> None:
    (deployment,) = by_kind(install, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert_restricted_pod(pod)
    (sa,) = by_kind(install, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    env = env_of(container)
    assert env["LOG_FORMAT"] == "json"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["LEASE_NAME"] == "modelmonitor"
    assert "STANDALONE" not in env  # several replicas elect one on the Lease
    assert env["JOB_IMAGE"] == container["image"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_manifests_services_select_the_operator(install: list[Doc]) -> None:
    """One Service for the metrics, one for the payload-log collector."""
    (deployment,) = by_kind(install, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = {s["metadata"]["name"]: s for s in by_kind(install, "Service")}
    assert set(services) == {"modelmonitor-metrics", "modelmonitor-payload"}
    for name, service in services.items():
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert port["name"] == port["targetPort"] == name.removeprefix("modelmonitor-")


LEASE_GRANTS: set[Grant] = {
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "update"),
    ("coordination.k8s.io", "leases", "create"),
}


def test_leader_lease_role_grants_only_its_lease_in_the_operator_s_namespace() -> None:
    """get and update name the Lease the operator uses (LEASE_NAME); only create, which
    RBAC cannot limit by name, is open; no kopf peering rights are left anywhere."""
    for name in INSTALL_FILES:
        docs = load_docs(MANIFESTS / name)
        (deployment,) = by_kind(docs, "Deployment")
        lease = env_of(deployment["spec"]["template"]["spec"]["containers"][0])["LEASE_NAME"]
        role = roles_by_name(docs)["modelmonitor-leader-election"]
        assert role["kind"] == "Role"
        assert grants(role) == LEASE_GRANTS
        for rule in role["rules"]:
            if set(rule["verbs"]) & {"get", "update"}:
                assert rule["resourceNames"] == [lease]
        assert role["metadata"].get("namespace") == deployment["metadata"].get("namespace")
        (binding,) = [
            b
            for b in by_kind(docs, "RoleBinding")
            if b["roleRef"]["name"] == role["metadata"]["name"]
        ]
        assert [s["name"] for s in binding["subjects"]] == ["modelmonitor"]
        assert not [d for d in docs if d["apiVersion"] == "kopf.dev/v1"]
        for other in roles_by_name(docs).values():
            assert not {g for g in grants(other) if g[0] == "kopf.dev"}, name


def test_cluster_install_watches_everything_with_cluster_roles() -> None:
    docs = load_docs(MANIFESTS / "install.yaml")
    (ns,) = by_kind(docs, "Namespace")
    namespace = ns["metadata"]["name"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == namespace
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "*"
    for binding in by_kind(docs, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "modelmonitor", "namespace": namespace}
        ]
    # the only namespaced rights: the leader Lease in the operator's own namespace
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == [
        "modelmonitor-leader-election"
    ]
    for binding in by_kind(docs, "RoleBinding"):
        assert binding["metadata"]["namespace"] == namespace


def test_namespaced_install_has_no_cluster_scoped_objects() -> None:
    docs = load_docs(MANIFESTS / "install-namespaced.yaml")
    kinds = {doc["kind"] for doc in docs}
    assert not kinds & {"Namespace", "ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    for doc in docs:
        assert "namespace" not in doc["metadata"], "placed by `kubectl apply -n`"
    (deployment,) = by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"]]
    # $(POD_NAMESPACE) expands only when POD_NAMESPACE is defined earlier in the list.
    assert names.index("POD_NAMESPACE") < names.index("WATCH_NAMESPACES")
    assert env_of(container)["WATCH_NAMESPACES"] == "$(POD_NAMESPACE)"
    assert env_of(container)["SCOPE"] == "namespace"


def test_both_installs_run_the_same_pod_apart_from_the_scope() -> None:
    pods = []
    for name in INSTALL_FILES:
        (deployment,) = by_kind(load_docs(MANIFESTS / name), "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            container["env"] = [
                e for e in container["env"] if e["name"] not in ("SCOPE", "WATCH_NAMESPACES")
            ]
        pods.append(pod)
    assert pods[0] == pods[1]


# -- RBAC: least privilege -----------------------------------------------------------------
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

MONITORING_GRANTS: set[Grant] = {
    *(("modelmonitor.io", "modelmonitors", v) for v in ("get", "list", "watch", "patch", "update")),
    *(("modelmonitor.io", "modelmonitors/status", v) for v in ("get", "patch", "update")),
    *((g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")),
    *(("apps", "deployments", v) for v in ("get", "list", "watch")),
    ("serving.kserve.io", "inferenceservices", "get"),  # references: an InferenceService target
    *(("", r, v) for r in ("services", "configmaps") for v in ("get", "list", "watch")),
    ("discovery.k8s.io", "endpointslices", "list"),
    ("", "pods", "list"),
}
CLUSTER_ONLY_GRANTS: set[Grant] = {
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
# Exactly the calls each executor makes (operator/modelmonitor/actions/*.py); the table
# they are derived from, and checked against the executors, is EXECUTOR_CALLS in
# tests/e2e/test_action_rbac.py.
ACTION_GRANTS: dict[str, set[Grant]] = {
    "rollback": {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "replicasets", "list"),
    },
    "scale": {
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        *(("autoscaling", "horizontalpodautoscalers", v) for v in ("get", "list", "patch")),
    },
    "notify": {("", "secrets", "get")},
    "kserve": {("serving.kserve.io", "inferenceservices", v) for v in ("get", "patch")},
    "retrain": {("batch", "jobs", v) for v in ("list", "create")},
    "gitops": {
        (group, resource, verb)
        for group, resource in (
            ("argoproj.io", "applications"),
            ("kustomize.toolkit.fluxcd.io", "kustomizations"),
            ("helm.toolkit.fluxcd.io", "helmreleases"),
        )
        for verb in ("get", "patch")
    }
    | {("source.toolkit.fluxcd.io", r, "get") for r in ("gitrepositories", "ocirepositories")},
}
# Actions the manifests leave off by default, as the chart does (rbac.actions.*: false):
# retrain creates Jobs from a tenant's template, so it is enabled deliberately.
# gitops (pausing a target's Argo CD or Flux owner) is off too: it writes objects outside
# the workloads, enabled by an admin who knows the tenants' owners live in their namespaces.
OFF_BY_DEFAULT = {"retrain", "gitops"}
# What the operator needs for job-mode runs (jobMode.enabled in the chart); manifests/
# grants it per namespace in job-mode.yaml, never in the install's actions role.
JOB_MODE_OPERATOR_GRANTS: set[Grant] = {
    ("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")
}
DEFAULT_ACTION_GRANTS: set[Grant] = set().union(
    *(g for action, g in ACTION_GRANTS.items() if action not in OFF_BY_DEFAULT)
)


def grants(role: Doc) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role.get("rules") or []:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {role['kind']}"
                    assert "resourceNames" not in rule or verb != "list"
                    out.add((group, resource, verb))
    return out


def roles_by_name(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Role", "ClusterRole")}


def test_cluster_install_grants_exactly_the_needed_permissions() -> None:
    roles = roles_by_name(load_docs(MANIFESTS / "install.yaml"))
    assert grants(roles["modelmonitor"]) == MONITORING_GRANTS | CLUSTER_ONLY_GRANTS
    assert grants(roles["modelmonitor-actions"]) == DEFAULT_ACTION_GRANTS


def test_namespaced_install_grants_exactly_the_needed_permissions() -> None:
    roles = roles_by_name(load_docs(MANIFESTS / "install-namespaced.yaml"))
    assert grants(roles["modelmonitor"]) == MONITORING_GRANTS
    assert grants(roles["modelmonitor-actions"]) == DEFAULT_ACTION_GRANTS


def test_no_install_creates_jobs_by_default() -> None:
    """Neither retrain nor job mode: a tenant's monitor cannot make the operator run pods."""
    for name in INSTALL_FILES:
        roles = roles_by_name(load_docs(MANIFESTS / name))
        for role in roles.values():
            assert ("batch", "jobs", "create") not in grants(role), (name, role["metadata"])
        text = (MANIFESTS / name).read_text()
        retrain = text.split("# - apiGroups: [batch]", 1)[1].split("\n  # Job-mode", 1)[0]
        rule = yaml.safe_load("- apiGroups: [batch]" + retrain.replace("\n  # ", "\n"))
        assert grants({"kind": "Role", "rules": rule}) == ACTION_GRANTS["retrain"], name
        (deployment,) = by_kind(load_docs(MANIFESTS / name), "Deployment")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["RETRAIN_SERVICE_ACCOUNTS"] == "default"


def test_monitoring_role_never_reads_secrets_or_writes_workloads() -> None:
    for name in INSTALL_FILES:
        base = grants(roles_by_name(load_docs(MANIFESTS / name))["modelmonitor"])
        assert not {g for g in base if g[1] == "secrets"}
        writes = {g for g in base if g[2] in ("create", "patch", "update", "delete")}
        assert {g[1] for g in writes} <= {
            "modelmonitors",
            "modelmonitors/status",
            "events",
        }


# The payload-log tokens' own role: create a monitor's token Secret and read it back.
PAYLOAD_TOKEN_GRANTS: set[Grant] = {("", "secrets", "get"), ("", "secrets", "create")}


def test_payload_token_role_grants_only_get_and_create_on_secrets() -> None:
    """Never list or watch (no enumerating Secrets), never update or delete (a token is
    never overwritten: rotation is the user deleting the Secret)."""
    for name in INSTALL_FILES:
        docs = load_docs(MANIFESTS / name)
        roles = roles_by_name(docs)
        assert grants(roles["modelmonitor-payload-tokens"]) == PAYLOAD_TOKEN_GRANTS, name
        bindings = [
            d
            for d in docs
            if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
            and d["roleRef"]["name"] == "modelmonitor-payload-tokens"
        ]
        assert [b["subjects"][0]["name"] for b in bindings] == ["modelmonitor"], name
        (deployment,) = by_kind(docs, "Deployment")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["PAYLOAD_URL"] == "http://modelmonitor-payload.$(POD_NAMESPACE).svc:8082"
        assert int(env["PAYLOAD_MAX_BYTES"]) == 256 * 1024 * 1024


# The Prometheus credentials' own role: read (never list) the Secrets spec.prometheus names.
PROMETHEUS_AUTH_GRANTS: set[Grant] = {("", "secrets", "get")}


def test_prometheus_auth_role_grants_only_get_on_secrets() -> None:
    """Never list or watch: the operator reads the Secrets a monitor names, one by one,
    and cannot enumerate the others; bound to the operator alone."""
    for name in INSTALL_FILES:
        docs = load_docs(MANIFESTS / name)
        roles = roles_by_name(docs)
        assert grants(roles["modelmonitor-prometheus-auth"]) == PROMETHEUS_AUTH_GRANTS, name
        bindings = [
            d
            for d in docs
            if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
            and d["roleRef"]["name"] == "modelmonitor-prometheus-auth"
        ]
        assert [[s["name"] for s in b["subjects"]] for b in bindings] == [["modelmonitor"]], name


# -- chart (static parts; rendering is tested with helm in tests/e2e/test_helm.py) ----------
JOB_RUN_GRANTS: set[Grant] = {
    ("modelmonitor.io", "modelmonitors", "get"),
    ("", "configmaps", "get"),
    ("", "configmaps", "create"),
    *(("", r, v) for r in ("services", "pods") for v in ("get", "list")),
    ("discovery.k8s.io", "endpointslices", "list"),
}


def test_job_mode_manifest_grants_a_run_only_what_it_needs() -> None:
    docs = load_docs(MANIFESTS / "job-mode.yaml")
    (sa,) = by_kind(docs, "ServiceAccount")
    roles = roles_by_name(docs)
    bindings = {d["metadata"]["name"]: d for d in by_kind(docs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"modelmonitor-job", "modelmonitor-job-mode"}
    for name, binding in bindings.items():
        assert binding["roleRef"]["name"] == name
    assert grants(roles["modelmonitor-job"]) == JOB_RUN_GRANTS
    assert bindings["modelmonitor-job"]["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"]}
    ]
    # The operator's own job-mode rights, in this namespace only: nothing for retrain.
    assert grants(roles["modelmonitor-job-mode"]) == JOB_MODE_OPERATOR_GRANTS
    (deployment,) = by_kind(load_docs(MANIFESTS / "install.yaml"), "Deployment")
    operator = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert bindings["modelmonitor-job-mode"]["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": operator,
            "namespace": deployment["metadata"]["namespace"],
        }
    ]
    for doc in docs:
        assert "namespace" not in doc["metadata"], "placed by `kubectl apply -n`"
    for name in INSTALL_FILES:
        (deployment,) = by_kind(load_docs(MANIFESTS / name), "Deployment")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["JOB_SERVICE_ACCOUNT"] == sa["metadata"]["name"]


def test_chart_metadata_and_values() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "modelmonitor"
    assert chart["appVersion"] == __version__
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["replicas"] == 1
    assert values["scope"] == "cluster"
    assert values["watchNamespaces"] == []
    assert values["serviceMonitor"]["enabled"] is False
    assert set(values["rbac"]["actions"]) == set(ACTION_GRANTS)
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsUser"] == NONROOT_UID


def leaf_paths(values: Doc, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths.append(path)
            paths.extend(leaf_paths(value, prefix=f"{path}."))
        else:
            paths.append(path)
    return paths


def test_chart_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+)` \|", readme, flags=re.MULTILINE))
    missing = [
        path
        for path in leaf_paths(values)
        if not any(path == key or path.startswith(f"{key}.") for key in documented)
        and not any(key.startswith(f"{path}.") for key in documented)
    ]
    assert not missing, f"chart README lacks values: {missing}"
    unknown = [key for key in documented if key not in leaf_paths(values)]
    assert not unknown, f"chart README documents values that do not exist: {unknown}"


def test_chart_values_schema_covers_exactly_the_values() -> None:
    """values.schema.json refuses unknown keys, so it must know every real one."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(value: Any, node: Doc, path: str) -> None:
        if not isinstance(value, dict) or "properties" not in node:
            return
        assert node.get("additionalProperties") is False, path
        assert set(value) == set(node["properties"]) - {"global"}, path
        for key, sub in value.items():
            walk(sub, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "values")


def test_chart_action_rules_match_the_manifests() -> None:
    """The chart's per-action rule blocks grant what manifests/ grants for that action."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = helpers.split('define "modelmonitor.actionRules"', 1)[1]
    for action, expected in ACTION_GRANTS.items():
        section = block.split(f"if $a.{action} }}}}", 1)[1].split("{{- end }}", 1)[0]
        rules = yaml.safe_load(section)
        assert grants({"kind": "ClusterRole", "rules": rules}) == expected, action
