"""The outbound fence's operator settings: read from the environment, checked, passed on."""

from __future__ import annotations

import pytest

from modelmonitor.core.outbound import ResponseLimits, refusal
from modelmonitor.edge.config import load_config


def test_defaults_refuse_loopback_and_cap_every_body() -> None:
    cfg = load_config(env={})
    assert cfg.outbound_allow_cidrs == ()
    assert refusal(cfg.outbound_policy(), "127.0.0.1", 80) == "loopback address"
    assert cfg.response_limits == ResponseLimits()
    # 64 concurrent probe requests of one run hold at most 64 MiB of bodies.
    assert 64 * cfg.response_limits.probe <= 64 << 20
    assert cfg.response_limits.buffer <= 256 << 20


def test_environment_settings() -> None:
    cfg = load_config(
        env={
            "OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8, 10.1.0.0/16",
            "OUTBOUND_MAX_REDIRECTS": "0",
            "OUTBOUND_MAX_PROBE_BYTES": "65536",
            "OUTBOUND_BUFFER_BYTES": "1048576",
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
        }
    )
    assert cfg.outbound_allow_cidrs == ("127.0.0.0/8", "10.1.0.0/16")
    assert refusal(cfg.outbound_policy(), "127.0.0.1", 80) is None
    assert cfg.outbound_policy().max_redirects == 0
    assert cfg.response_limits.probe == 65536
    assert cfg.response_limits.buffer == 1048576
    assert cfg.api_service == "10.96.0.1:443"
    # Job-mode pods get the same fence.
    env = cfg.outbound_env()
    assert env["OUTBOUND_ALLOW_CIDRS"] == "127.0.0.0/8,10.1.0.0/16"
    assert load_config(env=env).response_limits == cfg.response_limits


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,localhost"},
            "OUTBOUND_ALLOW_CIDRS: not a CIDR: 'localhost'",
        ),
        (
            {"OUTBOUND_MAX_PROBE_BYTES": "0"},
            "OUTBOUND_MAX_PROBE_BYTES='0' is not a whole number >= 1",
        ),
        ({"OUTBOUND_MAX_REDIRECTS": "-1"}, "OUTBOUND_MAX_REDIRECTS='-1'"),
        ({"OUTBOUND_BUFFER_BYTES": "1e9"}, "OUTBOUND_BUFFER_BYTES='1e9'"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(env=env)
