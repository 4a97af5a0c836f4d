"""The alert rules: valid for Prometheus, and each alert fires when it should and only then.

``promtool`` comes with Debian's prometheus package (tests/cluster/system-deps.sh), the
same Prometheus the e2e tests run; tests/unit/alerts/ holds its rule unit tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "modelmonitor" / "files" / "alerts" / "modelmonitor.rules.yaml"
RULE_TESTS = REPO / "tests" / "unit" / "alerts" / "modelmonitor.rules.test.yaml"
PROMTOOL = os.environ.get("MODELMONITOR_PROMTOOL_BIN", "/usr/bin/promtool")
ALERTS = {
    "ModelMonitorSLOBreached",
    "ModelMonitorDrifted",
    "ModelMonitorDegraded",
    "ModelMonitorNoRecentRun",
    "ModelMonitorActionFailed",
    "ModelMonitorAnomalous",
    "ModelMonitorOperatorDown",
}


def _promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    if not os.access(PROMTOOL, os.X_OK):
        pytest.fail(f"{PROMTOOL} not found: install Debian's prometheus package (make deps)")
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_rule_file() -> None:
    proc = _promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    cases = [case for test in doc["tests"] for case in test["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == ALERTS
    assert quiet == ALERTS


def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests really check the expressions: a rule that never fires is caught."""
    broken = RULES.read_text().replace(
        "max by (namespace, monitor, slo) (modelmonitor_slo_met) == 0",
        "max by (namespace, monitor, slo) (modelmonitor_slo_met) == 2",
    )
    assert broken != RULES.read_text()
    rules = tmp_path / "charts" / "modelmonitor" / "files" / "alerts" / RULES.name
    rules.parent.mkdir(parents=True)
    rules.write_text(broken)
    tests = tmp_path / "tests" / "unit" / "alerts" / RULE_TESTS.name
    tests.parent.mkdir(parents=True)
    tests.write_text(RULE_TESTS.read_text())
    proc = _promtool("test", "rules", tests.name, cwd=tests.parent)
    assert proc.returncode != 0
    assert "ModelMonitorSLOBreached" in proc.stdout + proc.stderr


def test_every_alert_has_summary_description_runbook_and_severity() -> None:
    alerts_doc = (REPO / "docs" / "alerts.md").read_text()
    rules = _rules()
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule["alert"]
        anchor = str(rule["alert"]).lower()
        assert annotations["runbook_url"].endswith(f"docs/alerts.md#{anchor}")
        assert f"## {rule['alert']}" in alerts_doc
        labels = rule["labels"]
        assert isinstance(labels, dict)
        assert labels["severity"] in {"warning", "critical"}
