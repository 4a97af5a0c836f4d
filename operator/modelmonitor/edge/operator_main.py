"""``modelmonitor run``: start the operator (kopf) with our settings."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

import kopf

from modelmonitor.edge.config import OperatorConfig, load_config
from modelmonitor.edge.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelmonitor.core.cluster import ClusterApi
    from modelmonitor.engine.remediation import Remediation

    # What acts on the monitors' verdicts, built from the API it acts through.
    RemediationFactory = Callable[[ClusterApi], Remediation]

log = logging.getLogger("modelmonitor")


def run_command(args: argparse.Namespace, *, remediation: RemediationFactory | None = None) -> int:
    """``modelmonitor run``; ``remediation`` replaces the default
    :class:`~modelmonitor.engine.remediation.Remediator`."""
    try:
        cfg = load_config(
            namespaces=args.namespaces,
            all_namespaces=args.all_namespaces,
            log_format=args.log_format,
            log_level=args.log_level,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            payload_port=args.payload_port,
            peering=args.peering,
            standalone=args.standalone,
        )
    except ValueError as exc:
        print(f"modelmonitor run: {exc}")
        return 2
    return run_operator(cfg, remediation=remediation)


def remediator_factory(cfg: OperatorConfig) -> RemediationFactory:
    """The default remediation: every registered executor, with the operator's settings."""
    from modelmonitor.actions import registry
    from modelmonitor.engine.remediation import Remediator

    executors = registry.all_executors(retrain_service_accounts=cfg.retrain_service_accounts)
    return lambda api: Remediator(api, executors=executors)


def run_operator(cfg: OperatorConfig, *, remediation: RemediationFactory | None = None) -> int:
    configure_logging(cfg.log_format, cfg.log_level)
    # Imported here so that the offline commands never load kopf's handlers.
    from modelmonitor.adapters.kube import (
        KubeClient,
        KubePaths,
        load_api_client,
    )
    from modelmonitor.adapters.metrics import MetricsRecorder
    from modelmonitor.core.jobs import JobSettings
    from modelmonitor.edge import handlers
    from modelmonitor.engine.job_runner import JobRunner
    from modelmonitor.engine.runloop import ModeRunner
    from modelmonitor.engine.runner import InlineRunner
    from modelmonitor.sources.base import Clients
    from modelmonitor.sources.payload.store import PayloadStore
    from modelmonitor.sources.reference import ReferenceCache

    try:
        api_client = load_api_client()
        kube = KubeClient(api_client)
        if not cfg.standalone:
            namespaces = None if cfg.clusterwide else [n for n in cfg.namespaces if "*" not in n]
            kube.ensure_peering(cfg.peering_name, namespaces)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    metrics = MetricsRecorder()
    metrics.serve(cfg.metrics_port)
    payloads = PayloadStore()
    metrics.watch_payloads(payloads)
    inline = InlineRunner(
        Clients(
            references=ReferenceCache(kube, limits=cfg.reference_limits),
            lookup=kube,
            resolution=cfg.resolution(),  # type: ignore[arg-type]
            prometheus_min_window_seconds=cfg.prometheus_min_window_seconds,
            payloads=payloads,
        )
    )
    job_env = {
        "ENDPOINT_RESOLUTION": cfg.endpoint_resolution,
        "PROMETHEUS_MIN_WINDOW_SECONDS": f"{cfg.prometheus_min_window_seconds:g}",
        "LOG_FORMAT": cfg.log_format,
        **cfg.reference_limits_env(),
    }
    jobs = JobRunner(kube, JobSettings(cfg.job_image, cfg.job_service_account, extra_env=job_env))
    runner = ModeRunner(inline, jobs)
    context = handlers.OperatorContext(
        cfg,
        kube,
        metrics,
        runner,
        asyncio.Semaphore(cfg.max_concurrent_runs),
        payloads=payloads,
        payload_port=cfg.payload_port,
        remediator=(remediation or remediator_factory(cfg))(KubePaths(api_client)),
    )
    handlers.register_recheck(cfg.recheck_seconds)
    memo = kopf.Memo(context=context)
    kopf.run(
        clusterwide=cfg.clusterwide,
        namespaces=list(cfg.namespaces),
        standalone=cfg.standalone,
        priority=cfg.priority,
        peering_name=None if cfg.standalone else cfg.peering_name,
        liveness_endpoint=cfg.liveness_endpoint,
        memo=memo,
    )
    return 0
