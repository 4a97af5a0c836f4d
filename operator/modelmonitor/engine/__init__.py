"""The engine: runs a monitor from its spec to its verdict and its actions.

The run loop schedules runs and writes their verdicts; the runner gathers data from the
sources and calls the statistics; job mode runs the same runner in a Kubernetes Job;
remediation carries out what the policy decided through the actions; validation and
reference checks decide whether a monitor is ready. It wires sources, actions and
adapters together and is driven by the edge (kopf handlers, CLI).
"""
