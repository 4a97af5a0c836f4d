"""The requester-rights admission policy: shipped in sync, and covering the whole CRD.

policy/ is the source; ``make crd`` copies it into the chart and manifests/ like the CRDs
(checked here without a shell). The coverage tests walk the ModelMonitor schema: a new
field that names an object, or a new action, fails here until the policy checks the
requester's right to it or the field is listed below as naming no object. What the
policy does against a real API server is tested in tests/e2e/test_admission_policy.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path("policy")
COPIES = (Path("charts/modelmonitor/files/policy"), Path("manifests/policy"))
POLICY_NAME = "requester-rights.yaml"
CRD = ROOT / "crds" / "modelmonitor.io_modelmonitors.yaml"
SCRIPT = Path("hack/sync-crds.sh")

Doc = dict[str, Any]

# Schema fields that look like object names but name none (columns, SLOs, an enum).
NOT_OBJECT_NAMES = {
    "spec.features[].name": "a column of the data",
    "spec.prediction.name": "a column of the data",
    "spec.slos[].name": "the SLO's own name",
    "spec.slos[].template.name": "an enum of query templates",
    "spec.anomalies[].name": "the anomaly series' own name",
    "spec.anomalies[].template.name": "an enum of query templates",
    "spec.prometheus.headers[].name": "an HTTP header's name",
    "spec.prometheus.tlsConfig.serverName": "a DNS name to verify a certificate against",
    "spec.data.payloadLog.kafka.tlsConfig.serverName": "a DNS name to verify a certificate against",
    "spec.alerting.sinks[].name": "the sink's own name",
}

# What each action in the CRD's enum needs, as the text of the policy's check.
ACTION_CHECKS = {
    "rollback": "'rollback' in variables.actions",
    "scale": "'scale' in variables.actions",
    "retrain": "'retrain' in variables.actions",
    "notify": "object.spec.actions.notify.webhookSecretRef.name",
    "none": None,
}


def policy_sync_problems(root: Path) -> list[str]:
    """Every way the policy copies under ``root`` differ from ``root/policy``."""
    sources = {p.name: p.read_bytes() for p in sorted((root / SOURCE).glob("*.yaml"))}
    if not sources:
        return [f"no policies in {SOURCE}/"]
    problems: list[str] = []
    for copy_dir in COPIES:
        copies = {p.name: p.read_bytes() for p in sorted((root / copy_dir).glob("*.yaml"))}
        for name, content in sources.items():
            if name not in copies:
                problems.append(f"{copy_dir / name} is missing")
            elif copies[name] != content:
                problems.append(f"{copy_dir / name} differs from {SOURCE / name}")
        problems.extend(f"{copy_dir / name} is stale" for name in copies.keys() - sources.keys())
    return problems


@pytest.fixture(scope="module")
def docs() -> tuple[Doc, Doc]:
    loaded = [d for d in yaml.safe_load_all((ROOT / SOURCE / POLICY_NAME).read_text()) if d]
    assert [d["kind"] for d in loaded] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    return loaded[0], loaded[1]


def _expressions(policy: Doc) -> str:
    spec = policy["spec"]
    parts = [v["expression"] for v in spec["variables"]]
    parts += [v["expression"] for v in spec["validations"]]
    return "\n".join(" ".join(p.split()) for p in parts)


def _object_name_fields(node: Doc, path: str) -> list[str]:
    """Dotted paths of string fields called ``name`` or ``*Name`` anywhere under ``node``."""
    found: list[str] = []
    for key, sub in (node.get("properties") or {}).items():
        sub_path = f"{path}.{key}"
        if (key == "name" or key.endswith("Name")) and sub.get("type") == "string":
            found.append(sub_path)
        found.extend(_object_name_fields(sub, sub_path))
    if "items" in node:
        found.extend(_object_name_fields(node["items"], f"{path}[]"))
    return found


def _spec_schema() -> Doc:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: Doc = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


# -- in sync ---------------------------------------------------------------------------------
def test_chart_and_manifests_carry_exactly_the_policy_from_the_source() -> None:
    problems = policy_sync_problems(ROOT)
    assert not problems, "run `make crd` and commit the result:\n" + "\n".join(problems)


def test_sync_script_copies_and_verifies_the_policy(tmp_path: Path) -> None:
    (tmp_path / "hack").mkdir()
    shutil.copy(ROOT / SCRIPT, tmp_path / SCRIPT)
    for directory in (Path("crds"), SOURCE):
        (tmp_path / directory).mkdir()
    (tmp_path / "crds" / "a.yaml").write_text("kind: CustomResourceDefinition\n")
    (tmp_path / SOURCE / "p.yaml").write_text("kind: ValidatingAdmissionPolicy\n")

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["bash", str(tmp_path / SCRIPT), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    assert script("--verify").returncode == 1
    assert script().returncode == 0
    assert policy_sync_problems(tmp_path) == []
    (tmp_path / COPIES[1] / "p.yaml").write_text("kind: ValidatingAdmissionPolicy  # edited\n")
    result = script("--verify")
    assert result.returncode == 1
    assert "manifests/policy/p.yaml differs from policy/p.yaml" in result.stderr
    assert script().returncode == 0
    assert script("--verify").returncode == 0


# -- what the policy is ------------------------------------------------------------------------
def test_policy_refuses_on_create_and_spec_update_and_fails_closed(docs: tuple[Doc, Doc]) -> None:
    policy, binding = docs
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["modelmonitor.io"]
    assert rule["resources"] == ["modelmonitors"]  # not modelmonitors/status
    assert rule["operations"] == ["CREATE", "UPDATE"]
    (condition,) = spec["matchConditions"]
    assert condition["expression"] == (
        "request.operation == 'CREATE' || object.spec != oldObject.spec"
    )
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }


def test_every_validation_says_which_right_is_missing(docs: tuple[Doc, Doc]) -> None:
    for validation in docs[0]["spec"]["validations"]:
        expression = " ".join(validation["expression"].split())
        assert "authorizer." in expression, expression
        assert validation["reason"] == "Forbidden", expression
        message = validation["messageExpression"]
        assert message.startswith("variables.denied + '"), message
        verb = expression.split(".check('")[1].split("'")[0]
        assert message.split("'")[1].startswith(f"{verb} "), (verb, message)


def test_every_field_that_names_an_object_is_checked(docs: tuple[Doc, Doc]) -> None:
    expressions = _expressions(docs[0])
    fields = _object_name_fields(_spec_schema(), "spec")
    assert set(NOT_OBJECT_NAMES) <= set(fields), "stale entries in NOT_OBJECT_NAMES"
    unchecked = [
        field
        for field in fields
        if field not in NOT_OBJECT_NAMES and not _checked(field, expressions)
    ]
    assert not unchecked, f"the policy does not check the requester's right to: {unchecked}"


def _max_items(list_path: str) -> int | None:
    """The CRD's ``maxItems`` of the list at ``spec.a.b`` (None when unbounded)."""
    node = _spec_schema()
    for key in list_path.split(".")[1:]:
        node = node["properties"][key]
    value = node.get("maxItems")
    return int(value) if value is not None else None


def _checked(field: str, expressions: str) -> bool:
    """``object.<field>`` is in a check; for a field inside a list (``a.b[].c.name``),
    either the list is walked with ``all`` and each item's field checked
    (``object.a.b.all(x,`` and ``x.c.name`` in the same expression), or there is one
    check per index up to the list's ``maxItems`` (``object.a.b[0].c.name``, ...)."""
    if "[]" not in field:
        return f"object.{field}" in expressions
    outer, inner = field.split("[]", 1)
    bound = _max_items(outer) if "[]" not in inner else None
    if bound is not None and all(
        f"object.{outer}[{i}]{inner}" in expressions for i in range(bound)
    ):
        return True
    for expression in expressions.splitlines():
        start = expression.find(f"object.{outer}.all(")
        if start < 0:
            continue
        var = expression[start + len(f"object.{outer}.all(") :].split(",", 1)[0].strip()
        if f"{var}{inner}" in expression and "[]" not in inner:
            return True
    return False


def test_a_field_in_a_list_counts_only_when_each_item_is_checked() -> None:
    field = "spec.prometheus.headers[].valueFrom.secretKeyRef.name"
    each = "object.spec.prometheus.headers.all(h, authorizer.x.name(h.valueFrom.secretKeyRef.name))"
    assert _checked(field, each)
    assert not _checked(field, "object.spec.prometheus.headers[0].valueFrom.secretKeyRef.name")
    every_index = "\n".join(
        f"object.spec.prometheus.headers[{i}].valueFrom.secretKeyRef.name" for i in range(16)
    )
    assert _checked(field, every_index)
    assert not _checked(field, every_index.rsplit("\n", 1)[0])  # the last index unchecked
    assert not _checked(field, "object.spec.prometheus.headers.all(h, true) && other")


def test_every_action_is_checked(docs: tuple[Doc, Doc]) -> None:
    actions = _spec_schema()["properties"]["actions"]["properties"]
    lists = [f for f in actions if f.startswith("on")]
    assert lists == ["onSLOBreach", "onDrift", "onPerformanceDrop"]
    (variable,) = [v for v in docs[0]["spec"]["variables"] if v["name"] == "actions"]
    for field in lists:
        assert set(actions[field]["items"]["enum"]) == set(ACTION_CHECKS), field
        # every list of actions feeds the variable the action checks read
        assert f"object.spec.actions.{field}" in variable["expression"], field
    expressions = _expressions(docs[0])
    for action, check in ACTION_CHECKS.items():
        assert check is None or check in expressions, action


def test_chart_template_reads_the_copy_and_has_an_off_switch() -> None:
    template = (ROOT / "charts/modelmonitor/templates/admission-policy.yaml").read_text()
    assert f'.Files.Get "files/policy/{POLICY_NAME}"' in template
    assert "{{- if .Values.admissionPolicy.enabled }}" in template
    values = yaml.safe_load((ROOT / "charts/modelmonitor/values.yaml").read_text())
    assert values["admissionPolicy"] == {"enabled": True, "validationActions": ["Deny"]}


def test_gitops_pause_is_checked_for_every_owner_kind(docs: tuple[Doc, Doc]) -> None:
    """pause patches an owner found only when the rollback runs: all three kinds are checked."""
    expressions = _expressions(docs[0])
    assert "object.spec.actions.gitops != 'pause'" in expressions
    for group, resource in (
        ("argoproj.io", "applications"),
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("helm.toolkit.fluxcd.io", "helmreleases"),
    ):
        assert f"authorizer.group('{group}').resource('{resource}')" in expressions, resource


def test_every_optional_spec_part_is_tested_before_it_is_read(docs: tuple[Doc, Doc]) -> None:
    """An expression reading ``object.spec.x.y`` where ``spec.x`` may be absent fails with
    "no such key" for every monitor without ``x``, and the policy (failurePolicy Fail)
    then refuses monitors that are fine: ``has(object.spec.x)`` must come first."""
    schema = _spec_schema()
    always_there = set(schema.get("required") or []) | {
        key for key, sub in schema["properties"].items() if "default" in sub
    }
    policy = docs[0]["spec"]
    unguarded = []
    for item in [*policy["variables"], *policy["validations"]]:
        expression = " ".join(item["expression"].split())
        for top in set(re.findall(r"object\.spec\.(\w+)\.", expression)):
            # variables.actions is [] without spec.actions, and is tested first
            guarded = top == "actions" and expression.startswith(
                "!('rollback' in variables.actions)"
            )
            if (
                top not in always_there
                and not guarded
                and f"has(object.spec.{top})" not in expression
            ):
                unguarded.append(f"spec.{top} in: {expression[:120]}")
    assert not unguarded, "\n".join(unguarded)


def _optional(schema: Doc, path: list[str]) -> list[bool]:
    """For each field along ``path`` under spec: whether it may be absent (neither
    required by its parent nor defaulted)."""
    out = []
    node = schema
    for name in path:
        props = node.get("properties") or {}
        if name not in props:
            break
        sub = props[name]
        out.append(name not in (node.get("required") or []) and "default" not in sub)
        node = sub
    return out


def test_every_optional_field_along_a_read_path_is_tested_first(docs: tuple[Doc, Doc]) -> None:
    """Deeper than the test above: reading ``object.spec.data.partitions.s3.secretRef.name``
    needs ``has()`` for each optional object on the way (``data``, ``partitions``, ``s3``),
    or a monitor with ``partitions.claimName`` instead of ``s3`` is refused with "no such
    key". Paths through a list index are left to the list tests."""
    schema = _spec_schema()
    policy = docs[0]["spec"]
    unguarded = []
    for item in [*policy["variables"], *policy["validations"]]:
        expression = " ".join(item["expression"].split())
        guards = set(re.findall(r"has\(object\.spec\.([\w.]+)\)", expression))
        if expression.startswith("!('rollback' in variables.actions)"):
            guards.add("actions")  # variables.actions is [] without spec.actions
        # a read needs every optional field on its path present, its own too; has(a.b.c)
        # needs a and a.b (it tests c)
        reads = re.findall(r"(?<!has\()object\.spec\.([\w.]+)(?![\w.\[])", expression)
        paths = [read.split(".") for read in set(reads)]
        paths += [guard.split(".")[:-1] for guard in guards if "." in guard]
        for parts in paths:
            read = ".".join(parts)
            for depth, optional in enumerate(_optional(schema, parts), start=1):
                prefix = ".".join(parts[:depth])
                if optional and prefix not in guards:
                    unguarded.append(f"spec.{prefix} (read spec.{read}) in: {expression[:100]}")
    assert not unguarded, "\n".join(sorted(set(unguarded)))
