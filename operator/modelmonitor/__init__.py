"""modelmonitor: keeps ML models in production honest (drift, SLOs, safe remediation)."""

__version__ = "0.1.0"

GROUP = "modelmonitor.io"
VERSION = "v1alpha1"
PLURAL = "modelmonitors"
KIND = "ModelMonitor"
