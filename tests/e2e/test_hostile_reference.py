"""A tenant's reference that decodes to a huge table cannot take the shared operator down.

A 180 KiB Parquet file of 40M rows and a ~530 KB gzip that inflates to 512 MiB, each
in a ConfigMap's binaryData: decoding either whole took 1.4 GiB and more (the chart's
limit is 1 GiB), again after every restart. Each monitor is now Degraded with reason
ReferenceTooLarge and the operator's peak memory stays far below the limit.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import condition, monitor, setup, wait_status
from tests.hostile_files import gzip_bomb, parquet_claiming_rows


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_references_are_refused_and_the_operator_stays_small(
    operator_process: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    files = {
        "rows.parquet": parquet_claiming_rows(tmp_path / "rows.parquet"),
        "bomb.csv.gz": gzip_bomb(tmp_path / "bomb.csv.gz"),
    }
    for i, (key, path) in enumerate(files.items()):
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"hostile-{i}"},
            "binaryData": {key: base64.b64encode(path.read_bytes()).decode()},
        }
        # create, not apply: apply keeps a copy in an annotation, limited to 256 KiB
        cluster.kubectl("create", "-f", "-", "-n", namespace, input=json.dumps(cm))
        doc = monitor(f"hostile-{i}", "http://127.0.0.1:9", "iris")
        doc["spec"]["reference"] = {"configMapRef": {"name": f"hostile-{i}", "key": key}}
        doc["spec"]["data"]["probe"].update({"retries": 0, "timeoutSeconds": 1})
        cluster.apply(doc, "-n", namespace)
    for i in range(len(files)):
        st = wait_status(
            cluster,
            namespace,
            f"hostile-{i}",
            lambda s: condition(s, "Degraded").get("reason") == "ReferenceTooLarge",
            "Degraded, ReferenceTooLarge",
        )
        assert st["phase"] == "Degraded"
        assert "more than 5,000,000" in condition(st, "Degraded")["message"]
    assert operator_process.alive()
    assert operator_process.proc is not None
    peak = _peak_rss_mib(operator_process.proc.pid)
    assert peak < 600, f"operator peak RSS {peak:.0f} MiB"
    print(f"operator peak RSS after both refusals: {peak:.0f} MiB")
