"""The outbound fence's pure decisions: which addresses, which redirects, what is shown."""

from __future__ import annotations

import pytest

from modelmonitor.core.outbound import (
    OutboundPolicy,
    ResponseLimits,
    redact_url,
    refusal,
    same_origin,
    sanitize,
)

STRICT = OutboundPolicy()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local address"),  # the cloud metadata service
        ("169.254.0.1", "link-local address"),
        ("fe80::1", "link-local address"),
        ("fe80::1%eth0", "link-local address"),
        ("fd00:ec2::254", None),  # AWS's IPv6 metadata is unique-local: the NetworkPolicy's job
        ("127.0.0.1", "loopback address"),
        ("127.1.2.3", "loopback address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("10.0.0.7", None),
        ("192.168.1.10", None),
        ("8.8.8.8", None),
        ("2001:db8::1", None),
        ("metadata.google.internal", "not a numeric address"),  # names must be resolved first
    ],
)
def test_refusals_without_an_allowlist(address: str, reason: str | None) -> None:
    assert refusal(STRICT, address, 80) == reason


def test_the_allowlist_opens_only_what_it_names() -> None:
    policy = OutboundPolicy.parse(["127.0.0.0/8"])
    assert refusal(policy, "127.0.0.1", 8080) is None
    assert refusal(policy, "127.9.9.9", 8080) is None
    assert refusal(policy, "::1", 8080) == "loopback address"
    assert refusal(policy, "169.254.169.254", 80) == "link-local address"
    assert refusal(OutboundPolicy.parse(["169.254.0.0/16"]), "169.254.169.254", 80) is None


def test_the_api_server_is_refused_by_address_and_port_whatever_the_allowlist() -> None:
    policy = OutboundPolicy.parse(["127.0.0.0/8", "10.0.0.0/8"], [("10.96.0.1", 443)])
    assert refusal(policy, "10.96.0.1", 443) == "the Kubernetes API server"
    assert refusal(policy, "::ffff:10.96.0.1", 443) == "the Kubernetes API server"
    assert refusal(policy, "10.96.0.1", 8080) is None
    more = policy.with_api_servers([("127.0.0.1", 6443)])
    assert refusal(more, "127.0.0.1", 6443) == "the Kubernetes API server"
    assert refusal(more, "127.0.0.1", 6444) is None


def test_a_bad_cidr_is_named() -> None:
    with pytest.raises(ValueError, match="not a CIDR: 'metadata'"):
        OutboundPolicy.parse(["127.0.0.0/8", "metadata"])
    with pytest.raises(ValueError, match="max_redirects"):
        OutboundPolicy.parse([], max_redirects=-1)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://h/x", "http://h:80/y", True),
        ("https://h/x", "https://H:443/y", True),
        ("http://h/x", "https://h/x", False),
        ("http://h:8080/x", "http://h:8081/x", False),
        ("http://h/x", "http://h.evil/x", False),
        ("http://h/x", "http://user@h/x", True),
    ],
)
def test_same_origin(a: str, b: str, same: bool) -> None:
    assert same_origin(a, b) is same


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pass@h.example:8443/ref.csv?token=abc#frag",
            "https://h.example:8443/ref.csv?...",
        ),
        ("http://h/ref.csv", "http://h/ref.csv"),
        ("http://[fe80::1]:80/x", "http://[fe80::1]:80/x"),
        ("http://h:99999/x", "(an unparsable URL)"),
        ("http://h/a\nb\x1b", "http://h/ab"),  # urlsplit drops newlines; ESC is blanked
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_sanitize_makes_body_text_printable_and_short() -> None:
    text = sanitize("err\x00or\r\n\t" + "x" * 1000)
    assert text.isprintable()
    assert text.startswith("err or x")
    assert len(text) == 200
    assert text.endswith("...")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="probe"):
        ResponseLimits(probe=0)
