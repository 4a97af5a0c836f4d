"""What installing on a real cluster relies on, checked statically: the image's labels and
ports, the license behind its label, one operator namespace across the docs, the
walkthrough's manifests, the changelog. tests/e2e/test_walkthrough.py runs the walkthrough's
model and monitor; hack/image-smoke.sh checks a built image."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from modelmonitor.edge.config import OperatorConfig
from tests.unit.test_packaging import parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "modelmonitor-system"
OCI_LABELS = ("title", "description", "source", "version", "revision", "licenses")


def final_stage_instructions(keyword: str) -> list[str]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())[1][-1].args(keyword)


def default_port(name: str) -> int:
    fields = {f.name: f.default for f in dataclasses.fields(OperatorConfig)}
    return int(fields[name])  # type: ignore[call-overload]


def test_the_image_exposes_every_port_the_operator_listens_on() -> None:
    exposed = {int(p) for line in final_stage_instructions("EXPOSE") for p in line.split()}
    ports = {default_port(n) for n in ("metrics_port", "health_port", "payload_port")}
    assert exposed == ports, "EXPOSE must list metrics, health and the payload collector"


def test_the_image_carries_every_oci_label_and_the_build_args_fill_them() -> None:
    labels = " ".join(final_stage_instructions("LABEL"))
    found = dict(re.findall(r'org\.opencontainers\.image\.(\w+)="([^"]*)"', labels))
    assert set(OCI_LABELS) <= found.keys()
    args = {a.partition("=")[0] for a in final_stage_instructions("ARG")}
    for label, arg in (("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")):
        assert found[label] == "${" + arg + "}"
        assert arg in args
    assert found["licenses"] == "Apache-2.0"


def test_the_license_behind_the_label_is_the_apache_license_and_reaches_the_image() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.strip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "!LICENSE" in (ROOT / ".dockerignore").read_text().split()
    builder = parse_dockerfile((ROOT / "Dockerfile").read_text())[1][0]
    assert any(c.split()[0] == "LICENSE" for c in builder.args("COPY"))


def markdown_and_manifests() -> list[Path]:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.yaml")]
    files += [*(ROOT / "manifests").rglob("*.yaml"), ROOT / "charts" / "modelmonitor" / "README.md"]
    return [f for f in files if f.name != "decisions.md"]


def test_the_operator_is_in_one_namespace_throughout_the_docs() -> None:
    wrong: list[str] = []
    helm = re.compile(
        r"helm (?:install|upgrade|uninstall)\b[^\n]*?(?:-n|--namespace)[ =]([a-z0-9-]+)"
    )
    operator_ns = re.compile(r"(?:deploy/modelmonitor|svc/modelmonitor-\w+)\b")
    for path in markdown_and_manifests():
        text = path.read_text()
        wrong += [
            f"{path.name}: helm -n {ns}" for ns in helm.findall(text) if ns != OPERATOR_NAMESPACE
        ]
        for line in text.splitlines():
            if operator_ns.search(line) and "-n " in line and OPERATOR_NAMESPACE not in line:
                wrong.append(f"{path.name}: {line.strip()}")
    assert not wrong, wrong
    for name in ("install.yaml", "job-mode.yaml"):
        namespaces = re.findall(
            r"^\s*namespace: (\S+)", (ROOT / "manifests" / name).read_text(), re.M
        )
        assert namespaces, name
        assert set(namespaces) == {OPERATOR_NAMESPACE}, name


def test_every_markdown_link_in_the_docs_names_a_file_that_exists() -> None:
    for path in [*markdown_and_manifests(), ROOT / "docs" / "decisions.md", ROOT / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)", path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} links {target}"


def test_the_walkthrough_model_runs_public_images_only_and_its_monitor_targets_it() -> None:
    docs = [
        d
        for d in yaml.safe_load_all((ROOT / "docs/examples/kind/iris-model.yaml").read_text())
        if d
    ]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert images == {"docker.io/seldonio/mlserver:1.7.1"}, "the MLServer version the tests run"
    requirements = (ROOT / "tests" / "modelserver.py").read_text()
    assert '"mlserver==1.7.1"' in requirements
    monitor = yaml.safe_load((ROOT / "docs/examples/iris.yaml").read_text())["spec"]
    assert monitor["target"]["name"] == kinds["Deployment"]["metadata"]["name"]
    service = kinds["Service"]
    assert monitor["target"]["endpoint"]["service"]["name"] == service["metadata"]["name"]
    assert monitor["target"]["endpoint"]["service"]["port"] in [
        p["port"] for p in service["spec"]["ports"]
    ]


def test_the_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    assert re.search(r"^### Added$", text, re.M)


def test_the_walkthrough_reference_holds_the_class_each_iris_should_get() -> None:
    from tests.iris import reference_csv

    path = ROOT / "docs" / "examples" / "data" / "iris-reference-predictions.csv"
    assert path.read_text() == reference_csv()
