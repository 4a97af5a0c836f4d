"""What a pod template written by a tenant may ask for: the retrain action's policy.

The ``retrain`` action creates a Job from ``spec.actions.retrain.jobTemplate`` with the
operator's own rights, so a template must not ask for more than the person who wrote the
monitor could have had: :func:`job_template_violations` lists what it asks for beyond
that, each with the field path that asks for it. Pure: the spec's template and the
allowed ServiceAccounts in, the violations out.

Covered: every check of the Kubernetes "baseline" Pod Security Standard (host namespaces,
privileged containers, added capabilities, hostPath volumes, host ports, AppArmor,
SELinux, /proc mount, seccomp, sysctls, Windows HostProcess), and beyond it
``allowPrivilegeEscalation: true``, ``nodeName`` (which bypasses the scheduler and its
admission checks) and a ServiceAccount outside the operator's allowlist. Baseline lets a
container add a short list of capabilities; here any added capability is refused, since
a training Job has no use for one. Running as root is not refused (baseline allows it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TEMPLATE_PATH = "spec.actions.retrain.jobTemplate"
DEFAULT_SERVICE_ACCOUNT = "default"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
# Baseline: the SELinux types a pod may ask for; user and role must stay unset.
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
# Baseline: the namespaced sysctls considered safe.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class Violation:
    """One field of the template that asks for more than a tenant may have."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _set(value: Any) -> bool:
    """A boolean field that asks for something: anything but absent or false."""
    return value is not None and value is not False


def job_template_violations(
    template: Mapping[str, Any],
    allowed_service_accounts: Collection[str],
    *,
    path: str = TEMPLATE_PATH,
) -> list[Violation]:
    """The violations of a batch/v1 JobSpec ``template``; empty when it may be created.

    An absent ``serviceAccountName`` is the namespace's ``default`` account.
    """
    pod = _obj(template.get("template"))
    pod_path = f"{path}.template"
    return [
        *_metadata_violations(_obj(pod.get("metadata")), f"{pod_path}.metadata"),
        *_pod_violations(_obj(pod.get("spec")), f"{pod_path}.spec", allowed_service_accounts),
    ]


def _metadata_violations(metadata: Mapping[str, Any], path: str) -> Iterator[Violation]:
    for key, value in _obj(metadata.get("annotations")).items():
        if str(key).startswith(APPARMOR_ANNOTATION) and not _apparmor_allowed(value):
            yield Violation(f"{path}.annotations[{key}]", f"AppArmor profile {value!r}")


def _apparmor_allowed(value: Any) -> bool:
    text = str(value)
    return text in ("", "runtime/default") or text.startswith("localhost/")


def _pod_violations(
    spec: Mapping[str, Any], path: str, allowed: Collection[str]
) -> Iterator[Violation]:
    for field in HOST_NAMESPACES:
        if _set(spec.get(field)):
            yield Violation(f"{path}.{field}", "host namespaces are not allowed")
    if spec.get("nodeName"):
        yield Violation(f"{path}.nodeName", "pinning a node (bypassing the scheduler)")
    yield from _service_account_violations(spec, path, allowed)
    for i, volume in enumerate(_items(spec.get("volumes"))):
        if _obj(volume).get("hostPath") is not None:
            yield Violation(f"{path}.volumes[{i}].hostPath", "hostPath volumes are not allowed")
    context = _obj(spec.get("securityContext"))
    context_path = f"{path}.securityContext"
    yield from _context_violations(context, context_path)
    for i, sysctl in enumerate(_items(context.get("sysctls"))):
        name = _obj(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            yield Violation(f"{context_path}.sysctls[{i}].name", f"unsafe sysctl {name!r}")
    for field in CONTAINER_LISTS:
        for i, container in enumerate(_items(spec.get(field))):
            yield from _container_violations(_obj(container), f"{path}.{field}[{i}]")


def _service_account_violations(
    spec: Mapping[str, Any], path: str, allowed: Collection[str]
) -> Iterator[Violation]:
    # serviceAccount is the deprecated alias; the API server uses it when the other is unset.
    named = False
    for field in ("serviceAccountName", "serviceAccount"):
        account = spec.get(field)
        if account is None or account == "":
            continue
        named = True
        if account not in allowed:
            yield Violation(f"{path}.{field}", f"ServiceAccount {account!r} is not allowed")
    if not named and DEFAULT_SERVICE_ACCOUNT not in allowed:
        yield Violation(
            f"{path}.serviceAccountName",
            f"unset means {DEFAULT_SERVICE_ACCOUNT!r}, which is not allowed",
        )


def _container_violations(container: Mapping[str, Any], path: str) -> Iterator[Violation]:
    context = _obj(container.get("securityContext"))
    context_path = f"{path}.securityContext"
    if _set(context.get("privileged")):
        yield Violation(f"{context_path}.privileged", "privileged containers are not allowed")
    if _set(context.get("allowPrivilegeEscalation")):
        yield Violation(
            f"{context_path}.allowPrivilegeEscalation", "privilege escalation is not allowed"
        )
    if _items(_obj(context.get("capabilities")).get("add")):
        yield Violation(f"{context_path}.capabilities.add", "adding capabilities is not allowed")
    proc_mount = context.get("procMount")
    if proc_mount not in (None, "Default"):
        yield Violation(f"{context_path}.procMount", f"procMount {proc_mount!r}")
    yield from _context_violations(context, context_path)
    for i, port in enumerate(_items(container.get("ports"))):
        if _obj(port).get("hostPort"):
            yield Violation(f"{path}.ports[{i}].hostPort", "host ports are not allowed")


def _context_violations(context: Mapping[str, Any], path: str) -> Iterator[Violation]:
    """The checks a pod's and a container's securityContext share."""
    if _set(_obj(context.get("windowsOptions")).get("hostProcess")):
        yield Violation(f"{path}.windowsOptions.hostProcess", "HostProcess is not allowed")
    for field in ("seccompProfile", "appArmorProfile"):
        kind = _obj(context.get(field)).get("type")
        if kind == "Unconfined":
            yield Violation(f"{path}.{field}.type", f"{field} Unconfined is not allowed")
    selinux = _obj(context.get("seLinuxOptions"))
    if selinux.get("type") not in (None, *SELINUX_TYPES):
        yield Violation(f"{path}.seLinuxOptions.type", f"SELinux type {selinux['type']!r}")
    for field in ("user", "role"):
        if selinux.get(field):
            yield Violation(f"{path}.seLinuxOptions.{field}", f"setting the SELinux {field}")


def describe(violations: Collection[Violation]) -> str:
    """One line naming every violation, for a condition's message or an action result."""
    return "refused: " + "; ".join(str(v) for v in violations)
