"""The thin adapter between the operator and the Kubernetes API.

Only this module (and kopf itself) talks to the API server; everything above it works
on plain dicts, so unit tests replace this object instead of the HTTP layer.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelmonitor import GROUP, PLURAL, VERSION
from modelmonitor.core.cluster import (
    FIELD_MANAGER,
    ApiError,
    PatchType,
    PathError,
    ReferenceLookupError,
    checked_path,
    resource_path,
)
from modelmonitor.core.lease import LEASE_API

log = logging.getLogger(__name__)

# Lease calls: a renewal answered later than this is no help to a 10 s lease.
LEASE_TIMEOUT_SECONDS = 3.0

# kind -> (API prefix, plural): the paths are built by core.cluster.resource_path.
_LIST_RESOURCES = {
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices"),
    "Pod": ("/api/v1", "pods"),
}
_RESOURCES = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "InferenceService": ("/apis/serving.kserve.io/v1beta1", "inferenceservices"),
}
_MONITORS = f"/apis/{GROUP}/{VERSION}"
_BATCH = "/apis/batch/v1"


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG or ~/.kube)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(config_file=kubeconfig)
        except (config.ConfigException, OSError) as exc:
            raise RuntimeError(
                f"no Kubernetes configuration: not in a pod, and no usable kubeconfig ({exc})"
            ) from exc
    configuration = client.Configuration.get_default_copy()
    # As many pooled connections as threads may call the API at once (default: 5 per CPU).
    configuration.connection_pool_maxsize = 64
    return client.ApiClient(configuration)


class KubeClient:
    """Read and write the few object kinds the operator needs, as plain dicts."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Return the object as a dict, ``None`` if absent; raise ReferenceLookupError else."""
        resource = _RESOURCES.get(kind)
        if resource is None:
            raise ValueError(f"unsupported kind {kind!r}; expected one of {', '.join(_RESOURCES)}")
        try:
            path = checked_path(resource_path(resource[0], namespace, resource[1], name))
        except PathError as exc:
            raise ReferenceLookupError(f"reading {kind} {namespace}/{name}: {exc}") from exc
        try:
            resp = self._api.call_api(
                path,
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ReferenceLookupError(
                f"reading {kind} {namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from exc
        except OSError as exc:
            raise ReferenceLookupError(f"reading {kind} {namespace}/{name}: {exc}") from exc
        result: dict[str, Any] = json.loads(resp.data)
        return result

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str], *, limit: int = 0
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` matching all ``labels`` (EndpointSlice, Pod);
        at most ``limit`` of them when it is set (the API server's page size)."""
        resource = _LIST_RESOURCES.get(kind)
        if resource is None:
            raise ValueError(f"listing {kind} is not supported")
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        try:
            path = resource_path(resource[0], namespace, resource[1])
        except PathError as exc:
            raise ReferenceLookupError(f"listing {kind} in {namespace}: {exc}") from exc
        params = {"labelSelector": selector} if selector else {}
        if limit:
            params["limit"] = str(limit)
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            items = self._request("GET", path + query).get("items") or []
        except ApiException as exc:
            raise ReferenceLookupError(
                f"listing {kind} in {namespace}: HTTP {exc.status} {exc.reason}"
            ) from exc
        return [dict(item) for item in items[: limit or None]]

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> dict[str, Any]:
        resp = self._api.call_api(
            checked_path(path),
            method,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=timeout,
        )
        result: dict[str, Any] = json.loads(resp.data)
        return result

    # -- generic object access (paths built by the callers below) --------------------------
    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get_monitor(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(resource_path(_MONITORS, namespace, PLURAL, name))

    def list_jobs(self, namespace: str, labels: Mapping[str, str]) -> builtins.list[dict[str, Any]]:
        return self.list_runs(_BATCH, "jobs", namespace, labels)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_run(_BATCH, "jobs", namespace, name)

    def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.create_run(_BATCH, "jobs", namespace, body)

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods and report ConfigMap."""
        self.delete_run(_BATCH, "jobs", namespace, name)

    # A run's workload (a batch/v1 Job, a DaskJob): ``api`` is the API prefix
    # (``/apis/batch/v1``), ``plural`` the resource. ApiException passes through, so a
    # caller can tell a missing CRD (404 on a list) or missing rights (403) apart.
    def list_runs(
        self, api: str, plural: str, namespace: str, labels: Mapping[str, str]
    ) -> builtins.list[dict[str, Any]]:
        selector = urllib.parse.quote(",".join(f"{k}={v}" for k, v in labels.items()))
        path = f"{resource_path(api, namespace, plural)}?labelSelector={selector}"
        return [dict(item) for item in self._request("GET", path).get("items") or []]

    def get_run(self, api: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get_or_none(resource_path(api, namespace, plural, name))

    def create_run(
        self, api: str, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._request("POST", resource_path(api, namespace, plural), body=body)

    def delete_run(self, api: str, plural: str, namespace: str, name: str) -> None:
        """Delete a run's object and, in the background, what it owns; absent is fine."""
        body = {"propagationPolicy": "Background"}
        try:
            self._request("DELETE", resource_path(api, namespace, plural, name), body=body)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("POST", resource_path("/api/v1", namespace, "configmaps"), body=body)

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Secret (a payload-log token); ApiError with the HTTP status on failure
        (409: it exists). The answer, which holds the Secret's data, is not kept."""
        try:
            self._request("POST", resource_path("/api/v1", namespace, "secrets"), body=body)
        except ApiException as exc:
            raise ApiError(int(exc.status or 0), str(exc.reason or "error")) from None
        except OSError as exc:
            raise ApiError(0, f"no answer from the API server: {exc.__class__.__name__}") from None
        return {"metadata": dict(body.get("metadata") or {})}

    def update_monitor_status(
        self,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        attempts: int = 5,
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Read the monitor, ``compute`` a status patch from it, write it if unchanged since.

        The patch carries the object's resourceVersion, so two writers (the spec handler
        and a run) never overwrite each other's conditions with a stale view: on a
        conflict the object is read again and the patch recomputed. Returns the object
        read and the patch written, or None when the monitor is gone or ``compute``
        declined.
        """
        path = resource_path(_MONITORS, namespace, PLURAL, name)
        for attempt in range(attempts):
            try:
                obj = self._request("GET", path)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            patch = compute(obj)
            if patch is None:
                return None
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": patch,
            }
            try:
                self._request(
                    "PATCH",
                    resource_path(_MONITORS, namespace, PLURAL, name, "status"),
                    body=body,
                    content_type="application/merge-patch+json",
                )
                return obj, patch
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409 or attempt == attempts - 1:
                    raise
        return None

    # -- leader election (coordination.k8s.io/v1 Leases) ----------------------------------
    def _lease_call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One Lease call, short (a slow answer is as good as none for a lease), with
        failures as ApiError (409: another replica wrote first; 0: no answer)."""
        try:
            return self._request(method, path, body=body, timeout=LEASE_TIMEOUT_SECONDS)
        except ApiException as exc:
            raise ApiError(int(exc.status or 0), str(exc.reason or "error")) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise ApiError(0, f"no answer from the API server: {exc.__class__.__name__}") from None

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._lease_call("GET", resource_path(LEASE_API, namespace, "leases", name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._lease_call("POST", resource_path(LEASE_API, namespace, "leases"), body)

    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT with the body's resourceVersion: 409 when the Lease changed since it was read."""
        return self._lease_call("PUT", resource_path(LEASE_API, namespace, "leases", name), body)


class KubePaths:
    """:class:`~modelmonitor.core.cluster.ClusterApi` over the API server, for the actions."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._kube = KubeClient(api_client)

    def _call(
        self, method: str, path: str, *, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        try:
            return self._kube._request(method, path, body=body, content_type=content_type)
        except ApiException as exc:
            raise ApiError(int(exc.status or 0), _api_message(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, f"no answer from the API server: {exc.__class__.__name__}") from exc

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, label_selector: str = "") -> builtins.list[dict[str, Any]]:
        query = f"?labelSelector={urllib.parse.quote(label_selector)}" if label_selector else ""
        return [dict(item) for item in self._call("GET", path + query).get("items") or []]

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        # One fixed field manager for every change an action makes, so that GitOps tools
        # can be told to leave those fields alone (docs/actions.md, GitOps owners).
        query = f"?fieldManager={FIELD_MANAGER}"
        return self._call("PATCH", path + query, body=body, content_type=_PATCH_TYPES[patch_type])

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", path + f"?fieldManager={FIELD_MANAGER}", body=body)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.get(resource_path("/api/v1", namespace, "secrets", name))
        if secret is None:
            return None
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            text = (secret.get("stringData") or {}).get(key)
            return str(text) if text is not None else None
        return base64.b64decode(raw).decode("utf-8").strip()


_PATCH_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


def _api_message(exc: ApiException) -> str:
    """The Status message of an API error, else its reason phrase."""
    try:
        data = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        data = {}
    message = data.get("message") if isinstance(data, dict) else None
    return str(message or exc.reason or "error")
