"""Remediation actions: rollback, scale, KServe canary traffic, webhook, retrain Job.

Each module turns one :class:`~modelmonitor.actions.base.ActionRequest` into an
:class:`~modelmonitor.actions.base.ActionResult` through the API; the decision to act
is :mod:`modelmonitor.policy`'s, and the bookkeeping (status, Events, metrics) is
:mod:`modelmonitor.remediation`'s.
"""
