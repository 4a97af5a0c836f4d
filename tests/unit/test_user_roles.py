"""ModelMonitors for people (manifests/user-roles.yaml), and uninstall docs that spare
the kopf.dev CRDs other operators share."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_packaging import CHART, MANIFESTS, ROOT, Grant, grants, load_docs

READ = {("modelmonitor.io", "modelmonitors", v) for v in ("get", "list", "watch")}
WRITE = READ | {
    ("modelmonitor.io", "modelmonitors", v)
    for v in ("create", "update", "patch", "delete", "deletecollection")
}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
EXPECTED: dict[str, set[Grant]] = {"view": READ, "edit": WRITE, "admin": WRITE}


def test_user_roles_aggregate_exactly_into_view_edit_admin() -> None:
    docs = load_docs(MANIFESTS / "user-roles.yaml")
    roles = {d["metadata"]["name"]: d for d in docs}
    assert set(roles) == {f"modelmonitor-{r}" for r in EXPECTED}
    for builtin, expected in EXPECTED.items():
        role = roles[f"modelmonitor-{builtin}"]
        assert role["kind"] == "ClusterRole"
        aggregation = {k: v for k, v in role["metadata"]["labels"].items() if AGGREGATE in k}
        assert aggregation == {f"{AGGREGATE}{builtin}": "true"}
        assert grants(role) == expected, builtin


def test_no_user_role_writes_status_or_reaches_beyond_modelmonitors() -> None:
    """A verdict is the operator's alone: people never get modelmonitors/status."""
    for role in load_docs(MANIFESTS / "user-roles.yaml"):
        assert {g[1] for g in grants(role)} == {"modelmonitors"}


def test_chart_user_roles_grant_what_the_manifests_grant() -> None:
    """The chart's template spells the same rules (rendered in the e2e helm tests)."""
    template = (CHART / "templates" / "user-roles.yaml").read_text()
    assert "verbs: [get, list, watch]\n" in template
    assert "verbs: [get, list, watch, create, update, patch, delete, deletecollection]" in template
    resources = re.findall(r"resources: (.*)", template)
    assert resources == ["[modelmonitors]"] * 2


def _commands(path: Path) -> list[str]:
    """Lines inside fenced code blocks (what a reader copies and runs)."""
    text = path.read_text()
    if path.suffix == ".txt":  # NOTES.txt: printed whole for copying
        return text.splitlines()
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return lines


def test_no_doc_deletes_the_crd_folders() -> None:
    """`kubectl delete -f .../crds/` would take the shared kopf.dev CRDs with it."""
    docs = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", CHART / "README.md"]
    docs.append(CHART / "templates" / "NOTES.txt")
    offenders = [
        (path.name, line)
        for path in docs
        for line in _commands(path)
        if re.search(r"kubectl\s+delete\s+(-f|--filename)\s+\S*crds", line)
    ]
    assert not offenders
    install = (ROOT / "docs" / "install.md").read_text()
    assert "kubectl delete crd modelmonitors.modelmonitor.io" in install
