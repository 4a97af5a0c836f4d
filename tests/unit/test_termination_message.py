"""The harness kubelet's termination messages (tests/cluster/termination.py)."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.termination import log_tail, message_path, read_message


def test_the_path_defaults_to_the_kubelets() -> None:
    assert message_path({}) == "/dev/termination-log"
    assert message_path({"terminationMessagePath": "/tmp/m"}) == "/tmp/m"


def test_the_file_is_the_message_capped_at_4096_bytes(tmp_path: Path) -> None:
    f = tmp_path / "m"
    f.write_bytes(b"x" * 5000)
    assert read_message({}, f, 0, b"log") == "x" * 4096
    f.write_bytes(b"")
    assert read_message({}, f, 1, b"log") == ""  # policy File: no fallback
    assert read_message({}, None, 0, b"") == ""
    assert read_message({}, tmp_path / "absent", 0, b"") == ""


def test_fallback_to_logs_only_on_error_and_without_a_message(tmp_path: Path) -> None:
    f = tmp_path / "m"
    f.write_bytes(b"")
    spec = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    log = b"".join(f"line {i}\n".encode() for i in range(100))
    tail = read_message(spec, f, 2, log)
    assert tail.splitlines() == [f"line {i}" for i in range(20, 100)]
    assert read_message(spec, f, 0, log) == ""  # succeeded: no fallback
    f.write_bytes(b"mine")
    assert read_message(spec, f, 2, log) == "mine"


def test_the_log_tail_is_at_most_2048_bytes() -> None:
    assert len(log_tail(b"y" * 10_000)) == 2048
    assert log_tail(b"a\nb\n", lines=1) == b"b"
