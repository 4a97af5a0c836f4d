"""SLIs, error budgets and multi-window multi-burn-rate evaluation.

Pure: no I/O and no clock of its own. Every function that needs "now" takes it as a
parameter (seconds since the epoch), so tests and the runner control time.

The model, in the terms of the Google SRE workbook ("Alerting on SLOs"):

- An SLI is a ratio of good events to all events (:class:`EventCounts`). For a latency
  SLO an event is good when the request finished within ``thresholdMs``; a failed
  request is a bad event.
- The error budget of an objective is ``1 - objective / 100`` (99.9 % -> 0.001).
- The burn rate over a window is ``bad ratio / budget``: 1 spends the budget exactly
  over the SLO window, 14.4 spends 2 % of a 30-day budget in one hour.
- Budget remaining over the SLO window is ``1 - bad ratio / budget`` (negative once
  the budget is overspent).
- An alert has a long and a short window and a factor; it fires only when the burn
  rate over *both* windows is at least the factor (the short window makes the alert
  reset quickly once the problem is fixed). The workbook's defaults are
  :data:`SRE_WORKBOOK_ALERTS`; :func:`scale_alerts` shrinks them for short tests.

For probe-sourced SLOs the operator has only its own measurements, one batch per
run; :class:`EventHistory` keeps them in a bounded, mergeable set of time buckets that
fits in the monitor's status.
"""
