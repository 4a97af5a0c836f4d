"""The pure core: what a monitor is, what a run found, and what to do about it.

Spec types and parsing, datasets, the statistics engine, SLO math, the report, the
verdict, status and incident types, the remediation policy, scheduling, Job manifests,
the protocol codecs and the interfaces (protocols) the outer layers implement.

It imports numpy, scipy, datasketches and the standard library only: never kubernetes,
kopf, aiohttp, prometheus_client or a network client, so all of it is tested without a
cluster or a socket. ``make lint`` enforces this (``.importlinter``).
"""
