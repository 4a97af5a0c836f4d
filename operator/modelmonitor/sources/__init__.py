"""Where data comes from: references, probes, payload logs, Prometheus."""
