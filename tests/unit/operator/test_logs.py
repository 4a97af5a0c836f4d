"""LOG_FORMAT=json: every line the operator writes is one JSON object, tracebacks included."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, logging, threading, warnings
    from modelmonitor.edge.logs import configure_logging

    configure_logging("json", "INFO")
    logging.getLogger("modelmonitor.test").info("started")

    def crash():
        raise RuntimeError("thread went wrong")

    t = threading.Thread(target=crash, name="renewer")
    t.start()
    t.join()

    class Leaky:
        def __del__(self):
            raise ValueError("finaliser went wrong")

    Leaky()
    gc.collect()
    warnings.warn("a deprecated knob", DeprecationWarning, stacklevel=1)
    raise KeyError("main went wrong")
    """
)


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_mode_keeps_every_line_json_and_every_traceback() -> None:
    proc = run(SCRIPT)
    assert proc.returncode == 1  # an uncaught exception still fails the process
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any plain-text line
    by_message = {r["message"]: r for r in records}
    assert "started" in by_message
    thread = by_message["uncaught exception in thread renewer"]
    assert "RuntimeError: thread went wrong" in thread["exc_info"]
    finaliser = next(r for r in records if "Exception ignored" in r["message"])
    assert "ValueError: finaliser went wrong" in finaliser["exc_info"]
    assert any("a deprecated knob" in r["message"] for r in records)
    main = by_message["uncaught exception: KeyError"]
    assert "KeyError: 'main went wrong'" in main["exc_info"]
    assert main["severity"] == "fatal"  # kopf's name for CRITICAL


def test_text_mode_leaves_python_s_printers_alone() -> None:
    proc = run(
        "from modelmonitor.edge.logs import configure_logging\n"
        "configure_logging('text', 'INFO')\n"
        "raise KeyError('plain')\n"
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
