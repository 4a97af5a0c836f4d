"""Which executor carries out which action: the one place an action is plugged in.

Keyed by the core's vocabulary (:class:`~modelmonitor.core.action_names.ActionName`):
every name a monitor may list has exactly one entry, checked when this module is
imported and by ``tests/unit/actions/test_registry.py`` (which also compares the CRD's
enum). An action whose executor depends on the target kind dispatches on it here; an
action that follows another (``scale-back``) is a follow-up, not a name a monitor lists.
Asking for a name that is not here is an error (:class:`UnknownActionError`), never a
fallback to some other executor.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping

from modelmonitor.actions import gitops, kserve, notify, retrain, rollback, scale
from modelmonitor.actions.base import Executor
from modelmonitor.adapters.outbound import Outbound
from modelmonitor.core.action_names import SCALE_BACK, ActionName
from modelmonitor.core.cluster import ClusterApi
from modelmonitor.core.gitops import GitOpsSettings
from modelmonitor.core.incident import ActionRequest, ActionResult
from modelmonitor.core.pod_policy import DEFAULT_SERVICE_ACCOUNT
from modelmonitor.core.spec import MonitorSpec


class UnknownActionError(LookupError):
    """No executor is registered under this action name."""


def by_target_kind(default: Executor, **kinds: Executor) -> Executor:
    """One action carried out differently per ``spec.target.kind``."""

    def execute(api: ClusterApi, spec: MonitorSpec, request: ActionRequest) -> ActionResult:
        return kinds.get(spec.target.kind, default)(api, spec, request)

    return execute


ROLLBACK_BY_KIND: Executor = by_target_kind(
    rollback.execute_rollback, InferenceService=kserve.execute_canary_rollback
)

EXECUTORS: Mapping[str, Executor] = {
    # spec.actions.gitops decides first whether a target a GitOps tool owns is rolled back
    ActionName.ROLLBACK: gitops.guarded(ROLLBACK_BY_KIND),
    ActionName.SCALE: scale.execute_scale,
    ActionName.NOTIFY: notify.execute_notify,
    ActionName.RETRAIN: retrain.execute_retrain,
}

# Requests the policy plans by itself, after an action: not listed in a spec.
FOLLOW_UPS: Mapping[str, Executor] = {
    SCALE_BACK: scale.execute_scale_back,
}


def all_executors(
    *,
    retrain_service_accounts: Collection[str] = (DEFAULT_SERVICE_ACCOUNT,),
    outbound: Outbound | None = None,
    gitops_settings: GitOpsSettings | None = None,
) -> dict[str, Executor]:
    """Every request's executor by its ``action``: the listed actions and the follow-ups;
    retrain lets a Job run as one of ``retrain_service_accounts`` (the operator's setting),
    notify posts through ``outbound`` (the operator's fence; default: the strict one),
    rollback finds GitOps owners with ``gitops_settings``."""
    retrain_with_allowlist = functools.partial(
        retrain.execute_retrain, allowed_service_accounts=tuple(retrain_service_accounts)
    )
    notify_fenced = functools.partial(notify.execute_notify, post=notify.fenced_post(outbound))
    return {
        **EXECUTORS,
        ActionName.RETRAIN: retrain_with_allowlist,
        ActionName.NOTIFY: notify_fenced,
        ActionName.ROLLBACK: gitops.guarded(ROLLBACK_BY_KIND, gitops_settings),
        **FOLLOW_UPS,
    }


def executor_for(action: str, executors: Mapping[str, Executor] | None = None) -> Executor:
    """The executor of ``action`` (in ``executors``, by default all registered ones)."""
    table = all_executors() if executors is None else executors
    try:
        return table[action]
    except KeyError:
        raise UnknownActionError(f"no executor for {action}") from None


def _check() -> None:
    names = {a.value for a in ActionName}
    if set(EXECUTORS) != names:
        raise RuntimeError(
            f"action registry {sorted(EXECUTORS)} and vocabulary {sorted(names)} differ"
        )


_check()
