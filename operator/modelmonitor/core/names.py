"""The rules Kubernetes holds object names and data keys to, as pure checks.

A name the user writes ends up as one segment of an API path, so a name that is not a
valid Kubernetes name (``../../kube-system/configmaps/x``, ``a%2Fb``) must never reach
the path builder. The CRD states the same rules as patterns; the parser applies them
again to specs that arrive another way (an older CRD, a file in job mode).

Each check returns None when the value is valid, else a message saying what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NameRule:
    """One of Kubernetes' rules for a name: a pattern, a length limit, and what it says."""

    pattern: str
    max_length: int
    says: str
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))

    def problem(self, value: object) -> str | None:
        """None when ``value`` follows the rule, else what is wrong with it."""
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters (got {len(value)})"
        # fullmatch, not match: "$" would also accept a trailing newline.
        if not value.isascii() or self._compiled.fullmatch(value) is None:
            return f"invalid value {value!r}: {self.says}"
        return None


# DNS-1123 subdomain: Deployments, ConfigMaps, Secrets, PersistentVolumeClaims, Jobs...
SUBDOMAIN = NameRule(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    253,
    "must be a DNS-1123 subdomain: lower case letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
)
# DNS-1123 label: namespaces.
LABEL = NameRule(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    63,
    "must be a DNS-1123 label: lower case letters, digits and '-', "
    "starting and ending with a letter or digit",
)
# DNS-1035 label: Services (the name becomes a DNS label, so it starts with a letter).
DNS1035 = NameRule(
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    63,
    "must be a DNS-1035 label: lower case letters, digits and '-', "
    "starting with a letter and ending with a letter or digit",
)
# A ConfigMap or Secret data key: [-._a-zA-Z0-9]+, neither "." nor starting with "..".
KEY = NameRule(
    r"^([-_a-zA-Z0-9][-._a-zA-Z0-9]*|\.[-_a-zA-Z0-9][-._a-zA-Z0-9]*)$",
    253,
    "must be a ConfigMap or Secret key: letters, digits, '-', '_' and '.', "
    "not '.' and not starting with '..'",
)

subdomain_problem = SUBDOMAIN.problem
label_problem = LABEL.problem
service_name_problem = DNS1035.problem
key_problem = KEY.problem
