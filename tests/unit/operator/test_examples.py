"""Every documented example is a valid spec for the operator too (not just the schema)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelmonitor.core.spec import parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "docs" / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_parses(example: Path) -> None:
    doc = yaml.safe_load(example.read_text())
    assert doc["kind"] == "ModelMonitor"
    parse_spec(doc["spec"])
