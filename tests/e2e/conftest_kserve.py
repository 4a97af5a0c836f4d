"""The ``inferenceservice_crd`` session fixture: KServe's InferenceService API, no KServe.

The CRD in tests/e2e/data/kserve-inferenceservice-crd.yaml is the InferenceService API
without the KServe controller, which cannot run here (it needs Knative and Istio); tests
write the status the controller would write. On a cluster named by
``MODELMONITOR_KUBECONFIG`` that has a real KServe, its CRD is used as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.kube import KubeCluster

CRD_FILE = Path(__file__).resolve().parent / "data" / "kserve-inferenceservice-crd.yaml"
CRD_NAME = "inferenceservices.serving.kserve.io"


@pytest.fixture(scope="session")
def inferenceservice_crd(kube_cluster: KubeCluster) -> KubeCluster:
    """The InferenceService CRD, installed (idempotently) and Established."""
    found = kube_cluster.kubectl(
        "get", "crd", CRD_NAME, "--ignore-not-found", "-o", "json"
    ).stdout.strip()
    labels = (json.loads(found).get("metadata") or {}).get("labels") or {} if found else {}
    # Absent, or our own copy from an earlier session: apply. Someone else's: leave it.
    if not found or labels.get("modelmonitor.io/e2e") == "true":
        kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    kube_cluster.wait_established(CRD_NAME)
    return kube_cluster
