"""The Remediated condition and the Events around an incident (pure parts of remediation)."""

from __future__ import annotations

from modelmonitor.remediation import incident_condition


def entry(kind: str, result: str, reason: str, incident: str = "i-1") -> dict[str, str]:
    return {
        "type": kind,
        "result": result,
        "reason": reason,
        "message": f"{kind} {reason}",
        "incident": incident,
    }


def test_a_refused_rollback_stays_visible_next_to_what_went_out() -> None:
    history = [
        entry("rollback", "skipped", "NoHealthyRevision"),
        entry("notify", "succeeded", "Notified"),
        entry("rollback", "succeeded", "RolledBack", incident="i-0"),  # another incident
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("True", "Notified")
    assert cond.message == "rollback: rollback NoHealthyRevision; notify: notify Notified"


def test_only_notes_so_far_report_the_latest_note() -> None:
    history = [
        entry("rollback", "suppressed", "Cooldown"),
        entry("rollback", "suppressed", "Paused"),
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("False", "Paused")


def test_notes_do_not_hide_results() -> None:
    history = [
        entry("rollback", "failed", "RollbackFailed"),
        entry("scale", "suppressed", "Paused"),
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("False", "RollbackFailed")
    assert "Paused" not in cond.message
