"""API paths: one builder that refuses bad segments, and an adapter that never sends one.

Every traversal here must fail before any request: the fake transport fails the test
loudly if the adapter ever reaches it.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.adapters.kube import KubeClient, KubePaths
from modelmonitor.core.cluster import (
    ApiError,
    PathError,
    ReferenceLookupError,
    checked_path,
    namespace_of,
    path_problem,
    resource_path,
)

TRAVERSALS = [
    "../../kube-system/configmaps/private-config",
    "..",
    ".",
    "",
    "a/b",
    "a%2Fb",
    "%2e%2e",
    "Private",
    "prïvate",
    "a?b",
    "a" * 254,
]


class NoTransport:
    """An ApiClient stand-in that must never be reached."""

    def __init__(self) -> None:
        self.configuration = None

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a request was sent: {args[:2]}")


def test_builds_the_usual_paths() -> None:
    assert resource_path("/api/v1", "ml", "configmaps", "ref") == (
        "/api/v1/namespaces/ml/configmaps/ref"
    )
    assert resource_path("/apis/apps/v1", "ml", "deployments") == (
        "/apis/apps/v1/namespaces/ml/deployments"
    )
    assert resource_path(
        "/apis/modelmonitor.io/v1alpha1", "ml", "modelmonitors", "m.1", "status"
    ) == ("/apis/modelmonitor.io/v1alpha1/namespaces/ml/modelmonitors/m.1/status")


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_refuses_a_bad_name(bad: str) -> None:
    with pytest.raises(PathError, match="name"):
        resource_path("/api/v1", "ml", "configmaps", bad)


@pytest.mark.parametrize("bad", [*TRAVERSALS, "a.b", "a" * 64])
def test_refuses_a_bad_namespace(bad: str) -> None:
    with pytest.raises(PathError, match="namespace"):
        resource_path("/api/v1", bad, "configmaps", "ref")


@pytest.mark.parametrize(
    ("prefix", "plural", "subresource"),
    [
        ("/api/v1/../v2", "configmaps", None),
        ("api/v1", "configmaps", None),
        ("/apis/apps", "deployments", None),
        ("/api/v1", "../secrets", None),
        ("/api/v1", "secrets/x", None),
        ("/api/v1", "configmaps", ".."),
        ("/api/v1", "configmaps", "status/x"),
    ],
)
def test_refuses_bad_fixed_segments(prefix: str, plural: str, subresource: str | None) -> None:
    with pytest.raises(PathError):
        resource_path(prefix, "ml", plural, "ref", subresource)


def test_subresource_needs_a_name() -> None:
    with pytest.raises(PathError):
        resource_path("/api/v1", "ml", "configmaps", None, "status")


def test_a_path_error_is_an_api_error() -> None:
    """Executors turn any ApiError into a FAILED result; a refused path is one too."""
    assert issubclass(PathError, ApiError)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/ml/configmaps/../../kube-system/configmaps/x",
        "/api/v1/namespaces/ml/configmaps/./x",
        "/api/v1/namespaces/ml/configmaps//x",
        "/api/v1/namespaces/ml/configmaps/a%2Fb",
        "/api/v1/namespaces/ml/configmaps/%2e%2e",
        "/api/v1/namespaces/ml/configmaps/%252e",
        "/api/v1/namespaces/ml/configmaps/a\\b",
        "/api/v1/namespaces/ml/configmaps/a b",
        "/api/v1/namespaces/kube-system/secrets/x#/../../ml/secrets/y",
        "/api/v1/namespaces/ml/configmaps/ü",
        "/api/v1/namespaces/ml/configmaps/",
        "api/v1/namespaces/ml/configmaps",
    ],
)
def test_non_canonical_paths_are_refused(path: str) -> None:
    assert path_problem(path) is not None
    with pytest.raises(PathError, match="refusing"):
        checked_path(path)


def test_canonical_paths_pass_with_their_query() -> None:
    path = "/apis/batch/v1/namespaces/ml/jobs?labelSelector=a%3Db"
    assert path_problem(path) is None
    assert checked_path(path) == path


@pytest.mark.parametrize(
    ("path", "namespace"),
    [
        ("/api/v1/namespaces/ml/configmaps/x", "ml"),
        ("/apis/apps/v1/namespaces/kube-system/deployments", "kube-system"),
        ("/apis/apps/v1/deployments", None),
        ("/api/v1/nodes/namespaces", None),
        ("/api/v1/namespaces", None),
        ("/apis/apps/namespaces/ml/deployments", None),
        ("/api/namespaces/ml/secrets", None),
        ("/other/v1/namespaces/ml/x", None),
    ],
)
def test_namespace_of(path: str, namespace: str | None) -> None:
    assert namespace_of(path) == namespace


# -- the adapter, with a transport that must never be reached -----------------------------


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Service", "Deployment"])
@pytest.mark.parametrize("bad", TRAVERSALS)
def test_lookup_refuses_before_sending(kind: str, bad: str) -> None:
    kube = KubeClient(NoTransport())  # type: ignore[arg-type]
    with pytest.raises(ReferenceLookupError, match="name"):
        kube.get(kind, "ml", bad)


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_list_refuses_a_bad_namespace_before_sending(bad: str) -> None:
    kube = KubeClient(NoTransport())  # type: ignore[arg-type]
    with pytest.raises(ReferenceLookupError):
        kube.list("Pod", bad, {"app": "x"})


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_secret_value_refuses_before_sending(bad: str) -> None:
    paths = KubePaths(NoTransport())  # type: ignore[arg-type]
    with pytest.raises(PathError):
        paths.secret_value("ml", bad, "url")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/ml/configmaps/../../kube-system/secrets/x",
        "/api/v1/namespaces/ml/secrets/a%2F..%2F..%2Fkube-system",
        "/api/v1/namespaces/ml//secrets",
    ],
)
def test_path_calls_refuse_before_sending(path: str) -> None:
    paths = KubePaths(NoTransport())  # type: ignore[arg-type]
    for call in (
        lambda: paths.get(path),
        lambda: paths.list(path),
        lambda: paths.patch(path, {}),
        lambda: paths.create(path, {}),
    ):
        with pytest.raises(PathError):
            call()


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_job_and_monitor_calls_refuse_before_sending(bad: str) -> None:
    kube = KubeClient(NoTransport())  # type: ignore[arg-type]
    for call in (
        lambda: kube.get_monitor("ml", bad),
        lambda: kube.get_job("ml", bad),
        lambda: kube.delete_job("ml", bad),
        lambda: kube.create_job(bad, {}),
        lambda: kube.create_configmap(bad, {}),
        lambda: kube.update_monitor_status("ml", bad, lambda obj: {}),
    ):
        with pytest.raises(PathError):
            call()
