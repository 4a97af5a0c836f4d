"""Checks for what a spec puts into an inference request's URL path.

``target.endpoint.model`` becomes one path segment (``/v2/models/<model>/infer``) and
``target.endpoint.path`` the path of a ``json`` endpoint. HTTP clients collapse ``.``
and ``..`` segments before sending, so a model named ``..`` or a path
``/../../admin`` would leave the path the monitor means (the base URL's prefix, or the
model server's inference route). As client-go does for object names
(``IsValidPathSegmentName``), a segment may not be ``.`` or ``..`` nor hold ``/`` or
``%``. The CRD states the same rules and the parser applies them; the probe
percent-quotes what it puts into the path and refuses dot segments again, since quoting
cannot neutralise them. Each ``*_problem`` check returns None when the value is valid,
else what is wrong.
"""

from __future__ import annotations

import re

_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")
# '?' and '#' would end the path; '%' would let a quoted '..' or '/' through a decoder.
_PATH_FORBIDDEN = frozenset("%?#\\")


def path_segment_problem(value: str) -> str | None:
    """None when ``value`` can be one URL path segment as it is written."""
    if not value:
        return "must not be empty"
    if value in (".", ".."):
        return f"may not be {value!r}"
    bad = sorted({c for c in value if c in "/%" or not c.isprintable()})
    if bad:
        return f"may not contain {', '.join(map(repr, bad))} (it is one URL path segment)"
    return None


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment (which clients collapse)."""
    return _DOT_SEGMENT.search(path) is not None


def url_path_problem(path: str) -> str | None:
    """None when ``path`` is an absolute URL path with no ``.``/``..`` segment."""
    if not path.startswith("/"):
        return "must start with '/'"
    if has_dot_segment(path):
        return "may not contain '.' or '..' segments"
    bad = sorted({c for c in path if c in _PATH_FORBIDDEN or c.isspace() or not c.isprintable()})
    if bad:
        return f"may not contain {', '.join(map(repr, bad))}"
    return None
