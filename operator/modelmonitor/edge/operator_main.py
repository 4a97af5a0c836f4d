"""``modelmonitor run``: start the operator (kopf) with our settings."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

import kopf

from modelmonitor.edge.config import OperatorConfig, load_config
from modelmonitor.edge.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelmonitor.adapters.outbound import Outbound
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
            standalone=args.standalone,
        )
    except ValueError as exc:
        print(f"modelmonitor run: {exc}")
        return 2
    return run_operator(cfg, remediation=remediation)


def remediator_factory(cfg: OperatorConfig, outbound: Outbound | None = None) -> RemediationFactory:
    """The default remediation: every registered executor, with the operator's settings
    (``outbound``: the fence the webhook is sent through)."""
    from modelmonitor.actions import registry
    from modelmonitor.adapters.webhook import fenced_post
    from modelmonitor.engine.remediation import Remediator

    executors = registry.all_executors(
        retrain_service_accounts=cfg.retrain_service_accounts,
        outbound=outbound,
        gitops_settings=cfg.gitops,
    )
    post = fenced_post(outbound)  # incident notifications: the same fence as notify
    return lambda api: Remediator(api, executors=executors, gitops_settings=cfg.gitops, post=post)


def run_operator(cfg: OperatorConfig, *, remediation: RemediationFactory | None = None) -> int:
    configure_logging(cfg.log_format, cfg.log_level)
    # Imported here so that the offline commands never load kopf's handlers.
    from modelmonitor.adapters.kube import (
        KubeClient,
        KubePaths,
        load_api_client,
    )
    from modelmonitor.adapters.metrics import MetricsRecorder
    from modelmonitor.adapters.outbound import Outbound, api_server_endpoints
    from modelmonitor.core.jobs import JobSettings
    from modelmonitor.edge import handlers
    from modelmonitor.engine.daskjob_runner import daskjob_runner
    from modelmonitor.engine.job_runner import JobRunner
    from modelmonitor.engine.leader import LeaseElector
    from modelmonitor.engine.runloop import ModeRunner
    from modelmonitor.engine.runner import InlineRunner
    from modelmonitor.engine.slots import RunSlots
    from modelmonitor.sources.base import Clients
    from modelmonitor.sources.payload.kafka_feed import KafkaFeeds
    from modelmonitor.sources.payload.server import MAX_BODY_BYTES
    from modelmonitor.sources.payload.store import PayloadStore
    from modelmonitor.sources.reference import ReferenceCache

    try:
        api_client = load_api_client()
        kube = KubeClient(api_client)
    except RuntimeError as exc:
        log.error("%s", exc)
        return 1
    try:
        servers = api_server_endpoints([api_client.configuration.host, cfg.api_service])
        outbound = Outbound(cfg.outbound_policy().with_api_servers(servers), cfg.response_limits)
    except ValueError as exc:
        log.error("outbound settings: %s", exc)
        return 1
    metrics = MetricsRecorder()
    metrics.serve(cfg.metrics_port)
    elector = (
        None
        if cfg.standalone
        else LeaseElector(
            kube,
            cfg.lease_namespace,
            cfg.lease_name,
            cfg.identity,
            cfg.lease,
            on_change=metrics.record_leadership,
        )
    )
    payloads = PayloadStore(max_bytes=cfg.payload_max_bytes)
    metrics.watch_payloads(payloads)
    metrics.watch_outbound(outbound)
    feeds = KafkaFeeds(
        payloads,
        outbound,
        max_value_bytes=MAX_BODY_BYTES,
        leading=elector.leading if elector is not None else None,
        lookup=kube,
    )
    metrics.watch_kafka(feeds)
    inline = InlineRunner(
        Clients(
            references=ReferenceCache(kube, outbound=outbound, limits=cfg.reference_limits),
            lookup=kube,
            resolution=cfg.resolution(),  # type: ignore[arg-type]
            prometheus_min_window_seconds=cfg.prometheus_min_window_seconds,
            payloads=payloads,
            outbound=outbound,
            # an object-storage window read inline: each object under the reference caps
            window_limits=cfg.reference_limits,
        )
    )
    job_env = {
        "ENDPOINT_RESOLUTION": cfg.endpoint_resolution,
        "PROMETHEUS_MIN_WINDOW_SECONDS": f"{cfg.prometheus_min_window_seconds:g}",
        "LOG_FORMAT": cfg.log_format,
        **cfg.outbound_env(),
        **cfg.reference_limits_env(),
    }
    slots = RunSlots(cfg.max_concurrent_runs, cfg.max_runs_per_namespace)
    job_settings = JobSettings(cfg.job_image, cfg.job_service_account, extra_env=job_env)
    jobs = JobRunner(kube, job_settings, slots=slots)
    runner = ModeRunner(inline, jobs, daskjob_runner(kube, job_settings, slots=slots))
    context = handlers.OperatorContext(
        cfg,
        kube,
        metrics,
        runner,
        slots,
        payloads=payloads,
        payload_port=cfg.payload_port,
        remediator=(remediation or remediator_factory(cfg, outbound))(KubePaths(api_client)),
        kafka_feeds=feeds,
        elector=elector,
    )
    handlers.register_recheck(cfg.recheck_seconds)
    memo = kopf.Memo(context=context)
    kopf.run(
        clusterwide=cfg.clusterwide,
        namespaces=list(cfg.namespaces),
        standalone=True,  # kopf peering off: the Lease elects the replica that acts
        liveness_endpoint=cfg.liveness_endpoint,
        memo=memo,
    )
    return 0
