"""Remediation actions: rollback, scale, KServe canary traffic, webhook, retrain Job.

Each module turns one :class:`~modelmonitor.core.incident.ActionRequest` into an
:class:`~modelmonitor.core.incident.ActionResult` through the API; the decision to act
is :mod:`modelmonitor.core.policy`'s, and the bookkeeping (status, Events, metrics) is
:mod:`modelmonitor.engine.remediation`'s.
"""
