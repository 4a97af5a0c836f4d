"""The names of the remediation actions: the one vocabulary the spec, the policy and the
executors share.

A monitor lists these names in ``spec.actions.onSLOBreach`` and ``spec.actions.onDrift``
(:mod:`~modelmonitor.core.spec` checks them, the CRD's enum is the same set);
:mod:`~modelmonitor.actions.registry` maps each one to the executor that carries it out.
``tests/unit/actions/test_registry.py`` checks that the three agree. The core cannot
import the executors, so the names live here; docs/actions.md ("How to add an action")
says what else a new one needs.
"""

from __future__ import annotations

from enum import StrEnum


class ActionName(StrEnum):
    """An action a monitor may list, in the order the CRD's enum lists them."""

    ROLLBACK = "rollback"  # Deployment: a revision seen healthy; InferenceService: canary to 0%
    SCALE = "scale"  # more replicas on a latency breach (scale-back follows)
    NOTIFY = "notify"  # a webhook
    RETRAIN = "retrain"  # a Job from the monitor's template


# Listed alone, it says "no action" for that trigger; it is no action itself.
NONE = "none"
# Not listed by a monitor: follows a scale step, once the incident closed, to undo it.
SCALE_BACK = "scale-back"

# The order the actions of one decision run in: the most effective first.
RUN_ORDER: tuple[ActionName, ...] = (
    ActionName.ROLLBACK,
    ActionName.SCALE,
    ActionName.RETRAIN,
    ActionName.NOTIFY,
)

# Actions that change nothing in the cluster: their success counts towards
# maxActionsPerHour but starts no cooldown (there is nothing to wait for).
CHANGE_NOTHING: frozenset[str] = frozenset({ActionName.NOTIFY})
