"""core.names: the Kubernetes rules for object names and data keys, at their edges."""

from __future__ import annotations

import re

import pytest

from modelmonitor.core.names import (
    DNS1035,
    KEY,
    LABEL,
    SUBDOMAIN,
    key_problem,
    label_problem,
    service_name_problem,
    subdomain_problem,
)

# Names that try to leave the monitor's namespace or smuggle a separator past a parser.
TRAVERSALS = [
    "../../kube-system/configmaps/private-config",
    "..",
    ".",
    "../x",
    "a/b",
    "a%2Fb",
    "a%2fb",
    "%2E%2E",
    "a\\b",
    "a?b",
    "a#b",
    "a b",
    "a\nb",
    "name\n",
    "",
]

SUBDOMAIN_VALID = ["a", "0", "fraud-model", "fraud.model", "a-b.c-d.e", "a" * 253, "1a"]
SUBDOMAIN_INVALID = [
    *TRAVERSALS,
    "Fraud",
    "fraud_model",
    "-a",
    "a-",
    ".a",
    "a.",
    "a..b",
    "a.-b",
    "a" * 254,
    "fräud",
    "ﬁle",  # a ligature that NFKC would fold into "file"
    "a\u200bb",
]


@pytest.mark.parametrize("name", SUBDOMAIN_VALID)
def test_subdomain_accepts(name: str) -> None:
    assert subdomain_problem(name) is None


@pytest.mark.parametrize("name", SUBDOMAIN_INVALID)
def test_subdomain_refuses(name: str) -> None:
    assert subdomain_problem(name) is not None


def test_subdomain_limit_is_253() -> None:
    exact = ".".join(["a" * 63] * 3 + ["a" * 61])
    assert len(exact) == 253
    assert subdomain_problem(exact) is None
    assert "at most 253" in (subdomain_problem(exact + "a") or "")


@pytest.mark.parametrize("name", ["a", "fraud-model", "a1", "a" * 63])
def test_service_name_accepts(name: str) -> None:
    assert service_name_problem(name) is None


@pytest.mark.parametrize(
    "name", [*TRAVERSALS, "1a", "a.b", "A", "a-", "a" * 64, "ü", "fraud.other-namespace"]
)
def test_service_name_refuses(name: str) -> None:
    assert service_name_problem(name) is not None


@pytest.mark.parametrize("name", ["a", "1a", "kube-system", "a" * 63])
def test_label_accepts(name: str) -> None:
    assert label_problem(name) is None


@pytest.mark.parametrize("name", [*TRAVERSALS, "a.b", "A", "-a", "a" * 64])
def test_label_refuses(name: str) -> None:
    assert label_problem(name) is not None


@pytest.mark.parametrize(
    "key", ["reference.csv", "a", "A_b-c.d", ".hidden", ".a..b", "a..b", "a.", "k" * 253]
)
def test_key_accepts(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize(
    "key", [*TRAVERSALS, "..x", "...", "k" * 254, "ключ", "a:b", "a=b", "a\u00a0b"]
)
def test_key_refuses(key: str) -> None:
    assert key_problem(key) is not None


@pytest.mark.parametrize("check", [subdomain_problem, service_name_problem, key_problem])
@pytest.mark.parametrize("value", [None, 3, b"a", ["a"]])
def test_non_strings_are_refused(check: object, value: object) -> None:
    assert callable(check)
    assert check(value) == "must be a non-empty string"


def test_message_names_the_value_and_the_rule() -> None:
    message = subdomain_problem("../x") or ""
    assert "'../x'" in message
    assert "DNS-1123 subdomain" in message


@pytest.mark.parametrize(
    ("pattern", "check"),
    [
        (SUBDOMAIN.pattern, subdomain_problem),
        (LABEL.pattern, label_problem),
        (DNS1035.pattern, service_name_problem),
        (KEY.pattern, key_problem),
    ],
)
def test_patterns_are_what_the_checks_apply(pattern: str, check: object) -> None:
    """The CRD carries these patterns; with the length limit they are the whole rule."""
    assert callable(check)
    for value in [*SUBDOMAIN_VALID, *SUBDOMAIN_INVALID, "..x", ".a", "A_b"]:
        if len(value) <= 63 and "\n" not in value:
            assert (re.fullmatch(pattern, value) is not None) == (check(value) is None), value
