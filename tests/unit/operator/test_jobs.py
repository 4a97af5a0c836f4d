"""Job-mode manifests and outcomes, built and read without a cluster."""

from __future__ import annotations

from modelmonitor.core.jobs import (
    JobSettings,
    build_job,
    build_report_configmap,
    job_name,
    job_outcome,
    report_configmap_name,
    run_id_for,
)

MONITOR = {"metadata": {"name": "fraud", "namespace": "ml", "uid": "u-1"}}


def test_job_manifest() -> None:
    job = build_job(
        monitor=MONITOR,
        run_id="abc123",
        settings=JobSettings(image="img:1", service_account="sa", extra_env={"A": "1"}),
        resources={"limits": {"memory": "1Gi"}},
        active_deadline_seconds=300,
    )
    assert job["metadata"]["name"] == "fraud-run-abc123"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelMonitor",
        "fraud",
        "u-1",
        True,
    )
    spec = job["spec"]
    assert spec["backoffLimit"] == 0  # never retried
    assert spec["activeDeadlineSeconds"] == 300
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "sa"
    container = pod["containers"][0]
    assert container["image"] == "img:1"
    assert container["args"] == [
        "job",
        "--namespace",
        "ml",
        "--name",
        "fraud",
        "--run-id",
        "abc123",
    ]
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # the report's seal: the kubelet copies this file into the pod's status
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    env = {e["name"]: e for e in container["env"]}
    assert env["A"]["value"] == "1"
    assert "controller-uid" in env["JOB_UID"]["valueFrom"]["fieldRef"]["fieldPath"]


def test_names_fit_the_limits() -> None:
    name = job_name("m" * 80, "0123456789")
    assert len(name) <= 63
    assert name.endswith("-run-0123456789")
    assert report_configmap_name("x-run-1") == "x-run-1-report"
    assert run_id_for("u", 100.2) == run_id_for("u", 100.9) != run_id_for("u", 101.0)


def test_report_configmap_is_owned_by_the_job() -> None:
    cm = build_report_configmap(
        job="j", job_uid="ju", namespace="ml", monitor="m", report_json="{}"
    )
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "ju"
    assert cm["data"] == {"report.json": "{}"}


def test_job_outcome() -> None:
    assert job_outcome({}).state == "running"
    assert (
        job_outcome({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).state
        == "succeeded"
    )
    failed = job_outcome(
        {
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "Job was active longer than specified deadline",
                    }
                ]
            }
        }
    )
    assert (failed.state, failed.reason) == ("failed", "DeadlineExceeded")
