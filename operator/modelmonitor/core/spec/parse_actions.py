"""Parse ``spec.actions``: the remediation policy, its actions' settings and GitOps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.core.gitops import GITOPS_POLICIES
from modelmonitor.core.names import key_problem, subdomain_problem
from modelmonitor.core.spec.fields import FieldReader
from modelmonitor.core.spec.model import (
    LEGACY_DEFAULTS,
    NOTIFY_FORMATS,
    ActionsSpec,
    NotifySpec,
    ScaleSpec,
)


def parse_actions(r: FieldReader, spec: Mapping[str, Any]) -> ActionsSpec:
    data = r.obj(spec, "actions", "spec") or {}
    path = "spec.actions"
    scale = notify = None
    s = r.obj(data, "scale", path)
    if s is not None:
        scale = ScaleSpec(
            max_replicas=r.integer(s, "maxReplicas", f"{path}.scale", default=0, low=1, high=1000),
            step=r.integer(s, "step", f"{path}.scale", default=ScaleSpec.step, low=1, high=100),
            stabilization_seconds=round(
                r.duration_or_legacy(
                    s,
                    "stabilizationWindow",
                    "stabilizationSeconds",
                    f"{path}.scale",
                    unit=1.0,
                    default=ScaleSpec.stabilization_seconds,
                    legacy_default=LEGACY_DEFAULTS["spec.actions.scale.stabilizationSeconds"],
                    low=0,
                    high=86400,
                    integer=True,
                )
            ),
        )
    n = r.obj(data, "notify", path)
    if n is not None:
        ref = r.obj(n, "webhookSecretRef", f"{path}.notify")
        if ref is None:
            r.problem(f"{path}.notify.webhookSecretRef", "is required")
            ref = {}
        notify = NotifySpec(
            secret_name=r.name(ref, "name", f"{path}.notify.webhookSecretRef", subdomain_problem)
            or "",
            secret_key=r.name(ref, "key", f"{path}.notify.webhookSecretRef", key_problem) or "",
            format=r.string(  # type: ignore[arg-type]
                n, "format", f"{path}.notify", default=NotifySpec.format, choices=NOTIFY_FORMATS
            ),
        )
    retrain = r.obj(data, "retrain", path)
    template = None
    if retrain is not None:
        template = r.obj(retrain, "jobTemplate", f"{path}.retrain")
        if template is None:
            r.problem(f"{path}.retrain.jobTemplate", "is required")
    return ActionsSpec(
        dry_run=r.boolean(data, "dryRun", path, default=ActionsSpec.dry_run),
        cooldown_seconds=round(
            r.duration_or_legacy(
                data,
                "cooldown",
                "cooldownSeconds",
                path,
                unit=1.0,
                default=ActionsSpec.cooldown_seconds,
                legacy_default=LEGACY_DEFAULTS["spec.actions.cooldownSeconds"],
                low=0,
                high=604800,
                integer=True,
            )
        ),
        consecutive_breaches=r.integer(
            data,
            "consecutiveBreaches",
            path,
            default=ActionsSpec.consecutive_breaches,
            low=1,
            high=100,
        ),
        max_actions_per_hour=r.integer(
            data,
            "maxActionsPerHour",
            path,
            default=ActionsSpec.max_actions_per_hour,
            low=1,
            high=100,
        ),
        on_slo_breach=r.action_list(data, "onSLOBreach", path),
        on_drift=r.action_list(data, "onDrift", path),
        on_performance_drop=r.action_list(data, "onPerformanceDrop", path),
        scale=scale,
        notify=notify,
        retrain_job_template=template,
        gitops=r.string(data, "gitops", path, default=ActionsSpec.gitops, choices=GITOPS_POLICIES)
        or ActionsSpec.gitops,
    )
