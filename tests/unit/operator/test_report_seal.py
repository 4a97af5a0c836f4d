"""The seal on a job-mode report (core/report_seal.py): only the bytes the run pod
wrote, vouched for by its termination message in the kubelet-written pod status."""

from __future__ import annotations

from typing import Any

from modelmonitor.core.report_seal import (
    check_report,
    parse_message,
    report_digest,
    termination_message,
)

OWNER = "uid-of-the-job"
REPORT = '{"drift": {"status": "ok"}, "samples": 10}'


def pod(message: str, *, owner: str = OWNER, controller: bool = True, code: int = 0) -> Any:
    return {
        "metadata": {"ownerReferences": [{"uid": owner, "controller": controller}]},
        "status": {
            "containerStatuses": [
                {"name": "run", "state": {"terminated": {"exitCode": code, "message": message}}}
            ]
        },
    }


def test_the_message_round_trips_and_is_small() -> None:
    message = termination_message(REPORT)
    assert parse_message(message) == report_digest(REPORT)
    assert len(message) < 100
    assert parse_message("") is None
    assert parse_message("sha256 of something") is None
    assert parse_message(message + "x" * 5000) is None


def test_the_report_the_pod_wrote_is_accepted() -> None:
    assert check_report(REPORT, [pod(termination_message(REPORT))], OWNER).ok


def test_a_replaced_report_is_rejected() -> None:
    forged = REPORT.replace('"ok"', '"drifted"')
    check = check_report(forged, [pod(termination_message(REPORT))], OWNER)
    assert not check.ok
    assert "does not match what the run pod wrote" in check.message


def test_a_pod_not_controlled_by_the_run_does_not_vouch() -> None:
    forged = '{"drift": {"status": "drifted"}}'
    for fake in (
        pod(termination_message(forged), owner="another-uid"),
        pod(termination_message(forged), controller=False),
    ):
        assert not check_report(forged, [fake, pod(termination_message(REPORT))], OWNER).ok
    assert not check_report(forged, [pod(termination_message(forged))], "").ok


def test_a_failed_run_container_or_no_message_does_not_vouch() -> None:
    assert not check_report(REPORT, [pod(termination_message(REPORT), code=1)], OWNER).ok
    check = check_report(REPORT, [pod("")], OWNER)
    assert not check.ok
    assert "termination message" in check.message
    assert not check_report(REPORT, [], OWNER).ok


def test_the_digest_is_of_the_utf8_bytes() -> None:
    assert report_digest("é") == report_digest("é")
    assert report_digest("é") != report_digest("e")
