"""Test-only: the operator, as if killed between deciding on an action and carrying it out.

``python -m tests.e2e.exit_before_action <arguments of modelmonitor run>`` is
``modelmonitor run`` with one change, for tests/e2e/test_remediation.py: right before
it would carry out an action for real (not a dry run) - after the decision and the
action's pending request were written to status - the process exits at once with
status 75 (no cleanup, as a crash would), logging ``fault injection: exiting before
<action> (<id>)`` first. The test then starts a normal operator and checks that it finds
the recorded intent and carries the action out exactly once. The operator itself has no
such switch: this module plugs the fault in through ``run_command``'s ``remediation``.

With ``EXIT_BEFORE=events`` in its environment it exits one step earlier: after the
intent was written and before the intent's Events (``IncidentConfirmed``,
``ActionPlanned``) were posted, logging ``fault injection: exiting before the Events of
<id>``; the restarted operator must post each of them once.

With ``EXIT_BEFORE=hang`` it does not exit: it logs ``fault injection: holding before
<action> (<id>)`` and blocks there, still holding its Lease, until the test kills it
(tests/e2e/test_failover.py: the standby replica must take over and act once).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from modelmonitor.core.incident import ActionRequest, ActionResult
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.verdict import Event
from modelmonitor.edge.cli import build_parser
from modelmonitor.edge.operator_main import run_command
from modelmonitor.engine.remediation import Remediator

EXIT_STATUS = 75
log = logging.getLogger("modelmonitor.faults")


class ExitBeforeAction(Remediator):
    """A remediator that exits the process instead of carrying out an action."""

    def announce(self, obj: Mapping[str, Any], events: Sequence[Event]) -> None:
        planned = [e for e in events if e.reason == "ActionPlanned" and e.type == "Warning"]
        if planned and os.environ.get("EXIT_BEFORE") == "events":
            log.error("fault injection: exiting before the Events of %s", planned[0].key)
            logging.shutdown()
            os._exit(EXIT_STATUS)
        super().announce(obj, events)

    def execute(
        self, spec: MonitorSpec, request: ActionRequest, metadata: Mapping[str, Any]
    ) -> ActionResult:
        if not request.dry_run and os.environ.get("EXIT_BEFORE") == "hang":
            log.error("fault injection: holding before %s (%s)", request.action, request.id)
            while True:  # until SIGKILL, as a replica on a node that stopped
                time.sleep(60)
        if not request.dry_run:
            log.error("fault injection: exiting before %s (%s)", request.action, request.id)
            logging.shutdown()
            os._exit(EXIT_STATUS)
        return super().execute(spec, request, metadata)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(["run", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args, remediation=ExitBeforeAction)


if __name__ == "__main__":
    raise SystemExit(main())
