"""Adapters: the thin layer between the operator and what it talks to.

The Kubernetes API client (paths built from checked, quoted segments), the Prometheus
metrics recorder, and the file readers (csv, tsv, jsonl, parquet, npy). Each implements
an interface the core names, so the layers above are tested against fakes of ours, never
against a mocked HTTP library.
"""
