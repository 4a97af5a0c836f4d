"""A file a user names on a volume (``spec.reference.pvc.path``): inside it, never outside.

The path is the file's place inside the PersistentVolumeClaim, whatever the directory
the run's pod mounts the claim at: ``data/reference.parquet`` and
``/data/reference.parquet`` name the same file (a leading ``/`` is the volume's root).
A ``..`` segment is refused outright, here and by the CRD's pattern, rather than
normalised: a path that climbs is a mistake or an attempt to read the pod's own files
(its ServiceAccount token). Symbolic links on the volume are the loader's to check,
with the file system at hand (:mod:`modelmonitor.sources.reference.loaders`).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

MAX_PATH_LENGTH = 1024
# The CRD's pattern for pvc.path (no lookahead, as the API server's RE2 has none): one or
# more segments separated by "/", none of them "..".
_SEGMENT = r"(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+|\.)"
VOLUME_PATH_PATTERN = rf"^/*{_SEGMENT}(?:/+{_SEGMENT})*/*$"
_PATTERN = re.compile(VOLUME_PATH_PATTERN)


def volume_path_problem(path: str) -> str | None:
    """None when ``path`` names a file inside a volume, else what is wrong with it."""
    if not [part for part in path.split("/") if part not in ("", ".")]:
        return "must name a file inside the volume"
    if len(path) > MAX_PATH_LENGTH:
        return f"must be at most {MAX_PATH_LENGTH} characters"
    if "\x00" in path:
        return "must not contain a NUL character"
    if any(part == ".." for part in path.split("/")):
        return "must stay inside the volume (no '..' segment)"
    if _PATTERN.fullmatch(path) is None:  # pragma: no cover - the checks above cover it
        return "is not a path inside the volume"
    return None


def inside_volume(path: str) -> PurePosixPath:
    """``path`` relative to the volume's root; ValueError when it would leave the volume."""
    problem = volume_path_problem(path)
    if problem is not None:
        raise ValueError(f"pvc.path {path!r} {problem}")
    return PurePosixPath(*[p for p in path.split("/") if p not in ("", ".")])
