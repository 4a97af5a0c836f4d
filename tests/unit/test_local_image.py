"""The harness's LocalImage: Docker's ENTRYPOINT/CMD rules, and a ``command`` found on
the image's own PATH (as ``command: [dask]`` finds the run image's dask)."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.images import ContainerContext, LocalImage


def context(
    tmp_path: Path, command: tuple[str, ...], args: tuple[str, ...] = ()
) -> ContainerContext:
    return ContainerContext(
        pod={},
        container={},
        pod_ip="127.0.0.2",
        env={"PATH": "/usr/bin:/bin"},
        pod_dir=tmp_path,
        command=command,
        args=args,
    )


def test_a_command_is_looked_up_on_the_images_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    tool = bin_dir / "dask"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    image = LocalImage(entrypoint=["modelmonitor"], env={"PATH": f"{bin_dir}:/usr/bin"})
    launch = image(context(tmp_path, ("dask",), ("scheduler", "--port", "8786")))
    assert list(launch.argv) == [str(tool), "scheduler", "--port", "8786"]
    # a path stays as given; a program the image's PATH lacks is left to the caller
    assert image(context(tmp_path, ("/bin/true",))).argv[0] == "/bin/true"
    assert image(context(tmp_path, ("not-there-at-all",))).argv[0] == "not-there-at-all"


def test_without_a_command_the_entrypoint_runs_with_args(tmp_path: Path) -> None:
    image = LocalImage(entrypoint=["modelmonitor"], cmd=("run",))
    assert list(image(context(tmp_path, ())).argv) == ["modelmonitor", "run"]
    assert list(image(context(tmp_path, (), ("job",))).argv) == ["modelmonitor", "job"]
