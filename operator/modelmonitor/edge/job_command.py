"""``modelmonitor job``: one monitoring run inside a Job's pod, report into a ConfigMap.

The same runner as inline mode; the Job's name and UID come from the pod's labels
(downward API), so the report ConfigMap is owned by the Job and goes with it. In a
DaskJob (``--dask-cluster NAME``) they are the pod's own name and UID: the report is
owned by the pod, which the DaskJob owns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modelmonitor.core.daskjobs import scheduler_address
from modelmonitor.core.jobs import build_report_configmap
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.report_seal import termination_message
from modelmonitor.core.stats.partitions import ProfileSchema
from modelmonitor.core.stats.profile import ReferenceProfile

if TYPE_CHECKING:
    from modelmonitor.adapters.outbound import Outbound
    from modelmonitor.sources.base import DaskProfiler


def dask_profiler(outbound: Outbound) -> DaskProfiler | None:
    """Mode dask's partition step, when the extra is installed: the scheduler's address
    through the outbound fence (resolved once, connected to by IP), then one task per file."""
    from modelmonitor.adapters import dask_engine

    if not dask_engine.available():
        return None

    def profile(
        scheduler: str, paths: Sequence[Path], schema: ProfileSchema, limits: ReadLimits
    ) -> tuple[ReferenceProfile, int]:
        address = dask_engine.fenced_address(scheduler, outbound.check)
        with dask_engine.connect(address) as client:
            run = dask_engine.profile_on_dask(client, paths, schema, limits)
        return run.profile, run.workers

    return profile


def cluster_scheduler(cluster: str, namespace: str, given: str) -> str | None:
    """The scheduler of the run's own DaskJob ``cluster``: ``given``
    (``$DASK_SCHEDULER_ADDRESS`` as dask-kubernetes injects it), accepted only when it
    names that DaskJob's scheduler Service in the run's namespace (anything else could
    send the run's client, which unpickles what its scheduler sends, elsewhere). None
    without ``--dask-cluster``."""
    if not cluster:
        return None
    expected = scheduler_address(cluster, namespace)
    if given != expected:
        raise ValueError(
            f"DASK_SCHEDULER_ADDRESS is {given!r}, not the run's own scheduler {expected!r}"
        )
    return expected


def job_command(args: argparse.Namespace) -> int:
    from modelmonitor.adapters.kube import KubeClient, load_api_client
    from modelmonitor.adapters.outbound import Outbound, api_server_endpoints
    from modelmonitor.core.spec import SpecError, parse_spec
    from modelmonitor.edge.config import load_config
    from modelmonitor.engine.runner import InlineRunner
    from modelmonitor.sources.base import Clients
    from modelmonitor.sources.reference import ReferenceCache

    cfg = load_config(standalone=True)
    job = args.job_name or cfg.job_name
    job_uid = args.job_uid or cfg.job_uid
    try:
        api_client = load_api_client()
        kube = KubeClient(api_client)
        monitor = kube.get_monitor(args.namespace, args.name)
    except Exception as exc:
        print(
            f"modelmonitor job: cannot read ModelMonitor {args.namespace}/{args.name}: {exc}",
            file=sys.stderr,
        )
        return 2
    if monitor is None:
        print(
            f"modelmonitor job: ModelMonitor {args.namespace}/{args.name} does not exist",
            file=sys.stderr,
        )
        return 2
    try:
        spec = parse_spec(monitor.get("spec") or {})
    except SpecError as exc:
        print(f"modelmonitor job: invalid spec: {exc}", file=sys.stderr)
        return 2
    try:
        own_scheduler = cluster_scheduler(
            args.dask_cluster, args.namespace, cfg.dask_scheduler_address
        )
    except ValueError as exc:
        print(f"modelmonitor job: {exc}", file=sys.stderr)
        return 2
    servers = api_server_endpoints([api_client.configuration.host, cfg.api_service])
    outbound = Outbound(cfg.outbound_policy().with_api_servers(servers), cfg.response_limits)
    runner = InlineRunner(
        Clients(
            references=ReferenceCache(
                kube,
                volume_root=args.reference_root or None,
                outbound=outbound,
                limits=cfg.reference_limits,
            ),
            outbound=outbound,
            lookup=kube,
            resolution=cfg.resolution(),  # type: ignore[arg-type]
            prometheus_min_window_seconds=cfg.prometheus_min_window_seconds,
            window_root=args.window_root or None,
            window_limits=cfg.reference_limits,
            dask=dask_profiler(outbound),
            dask_scheduler=own_scheduler,
        ),
        mode="job",
    )
    report = asyncio.run(runner.run(args.namespace, args.name, spec, monitor.get("status") or {}))
    payload = json.dumps(report.to_dict(), allow_nan=False, default=str)
    print(payload)
    if not job or not job_uid:
        print("modelmonitor job: no JOB_NAME/JOB_UID: report printed, not stored", file=sys.stderr)
        return 0 if args.print_only else 2
    try:
        kube.create_configmap(
            args.namespace,
            build_report_configmap(
                job=job,
                job_uid=job_uid,
                namespace=args.namespace,
                monitor=args.name,
                report_json=payload,
                owner_kind="Pod" if args.dask_cluster else "Job",
            ),
        )
    except Exception as exc:
        print(f"modelmonitor job: cannot store the report: {exc}", file=sys.stderr)
        return 3
    try:  # the seal the operator checks the stored report against (core/report_seal.py)
        Path(args.termination_log).write_text(termination_message(payload))
    except OSError as exc:
        print(f"modelmonitor job: cannot write the report's digest: {exc}", file=sys.stderr)
        return 3
    return 0
