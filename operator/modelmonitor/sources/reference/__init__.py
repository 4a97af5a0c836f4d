"""Load a monitor's reference data once, and again only when it changes.

Sources (``spec.reference``): a ConfigMap key, an http(s) URL (size-limited, timed out,
conditional GET), a file on a mounted volume (job mode), inline rows, or a saved
reference profile in any of them. The result is a :class:`LoadedReference`: the profile
every run compares against (computed once) plus a bounded sample of raw rows for the
probe to send.

* :mod:`.loaders`: one loader per source, in a registry keyed by ``ReferenceSpec.source``;
  each asks its source cheaply on every run whether it changed (the ConfigMap's
  ``resourceVersion``, the URL's ETag/Last-Modified, the file's size and mtime, the
  spec's own digest for inline rows); only a change reloads and re-profiles;
* :mod:`.build`: bytes, files and rows to a :class:`LoadedReference`;
* :mod:`.cache`: :class:`ReferenceCache`, which keeps what the loaders loaded.
"""

from modelmonitor.sources.reference.build import (
    PROBE_POOL_ROWS,
    ColumnPlan,
    LoadedReference,
    ReferenceLoadError,
    build_reference,
    inline_reference,
    parse_reference_bytes,
)
from modelmonitor.sources.reference.cache import ReferenceCache
from modelmonitor.sources.reference.loaders import LOADERS, Loader, LoadRequest

__all__ = [
    "LOADERS",
    "PROBE_POOL_ROWS",
    "ColumnPlan",
    "LoadRequest",
    "LoadedReference",
    "Loader",
    "ReferenceCache",
    "ReferenceLoadError",
    "build_reference",
    "inline_reference",
    "parse_reference_bytes",
]
