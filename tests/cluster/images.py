"""Images as local commands: what an :data:`ImageRunner` gets (:class:`ContainerContext`)
and returns (:class:`Launch`), and :class:`LocalImage` with Docker's ENTRYPOINT/CMD rules."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.environment import expand_vars
from tests.cluster.volumes import rewrite_mount_paths


@dataclass(frozen=True)
class ContainerContext:
    """What an image runner gets to build a container's command line."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    pod_ip: str
    # The process's environment (before the runner's additions).
    env: Mapping[str, str]
    # The pod's own scratch directory (exists; shared by its containers).
    pod_dir: Path
    # ``command`` and ``args`` of the container, with $(VAR) references expanded and
    # paths under a volume's mountPath rewritten to the local copy.
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    # mountPath -> the local directory (or file, with subPath) standing in for it.
    mounts: Mapping[str, Path] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        """Expand $(VAR) references against the container's environment."""
        return expand_vars(text, self.env)

    def local_path(self, text: str) -> str:
        """``text`` with paths under a volume's mountPath rewritten to the local copy."""
        return rewrite_mount_paths(text, self.mounts)

    def port(self, name: str) -> int:
        """The container port with this name."""
        for port in self.container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
        raise KeyError(f"container {self.container.get('name')!r} has no port named {name!r}")


@dataclass(frozen=True)
class Launch:
    """How to start a container's process: its argv, working directory, extra env."""

    argv: Sequence[str]
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)


# Turns a container of a pod into the local command that plays its image.
ImageRunner = Callable[[ContainerContext], Launch]


@dataclass(frozen=True)
class LocalImage:
    """An image as a local command, with Docker's ENTRYPOINT/CMD rules.

    A container's ``command`` replaces ``entrypoint`` (and drops ``cmd``); its ``args``
    replace ``cmd``. $(VAR) references in ``entrypoint`` and ``cmd`` are expanded with the
    container's environment, so ``"--bind", "$(POD_IP)"`` binds to the pod's address. A
    ``command`` naming a program without a path is looked up on the image's ``PATH``
    (``env``) when it sets one, as the image's own PATH would find it.
    """

    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    workdir: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, ctx: ContainerContext) -> Launch:
        if ctx.command:
            program = ctx.command[0]
            if "/" not in program and "PATH" in self.env:
                program = shutil.which(program, path=self.env["PATH"]) or program
            argv = [program, *ctx.command[1:], *ctx.args]
        else:
            tail = ctx.args or tuple(ctx.expand(a) for a in self.cmd)
            argv = [*(ctx.expand(a) for a in self.entrypoint), *tail]
        return Launch(argv=argv, cwd=self.workdir, env=dict(self.env))
