"""The loopback Git server of the Flux e2e test (tests/gitserver.py): a smart-HTTP clone
and fetch work with git's own client, and the server stays read-only and inside its
repository."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.gitserver import GIT_ENV, GitServer

pytestmark = pytest.mark.timeout(60)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env={"PATH": "/usr/bin:/bin", **GIT_ENV},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_clone_and_fetch_over_smart_http(tmp_path: Path) -> None:
    with GitServer(tmp_path / "srv") as server:
        first = server.commit({"apps/a.yaml": "v1\n"}, "v1")
        assert git("clone", "-q", server.url, "clone", cwd=tmp_path).returncode == 0
        clone = tmp_path / "clone"
        assert (clone / "apps" / "a.yaml").read_text() == "v1\n"
        second = server.commit({"apps/a.yaml": "v2\n"}, "v2")
        assert second != first
        assert git("pull", "-q", cwd=clone).returncode == 0
        assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == second
        assert server.requests_served >= 4  # refs and pack, twice: smart HTTP, not a copy


def test_pushes_are_refused_and_other_paths_are_not_served(tmp_path: Path) -> None:
    with GitServer(tmp_path / "srv") as server:
        server.commit({"a": "1\n"}, "one")
        assert git("clone", "-q", server.url, "clone", cwd=tmp_path).returncode == 0
        clone = tmp_path / "clone"
        (clone / "a").write_text("2\n")
        git("commit", "-qam", "two", cwd=clone)
        pushed = git("push", "origin", "HEAD:main", cwd=clone)
        assert pushed.returncode != 0
        assert "403" in pushed.stderr
        base = server.url.rsplit("/", 1)[0]
        for path in ("/work/.git/config", "/apps.git/../work/.git/config", "/other.git/HEAD"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path, timeout=5)
            assert err.value.code == 404, path
