"""Read a saved reference profile from untrusted bytes: every field checked, by name.

A profile comes from a file, a ConfigMap or a URL, so anyone may have written it. One
with ``n: -1``, ``min > max``, a string where a count goes or a missing key must be
refused with the field named (``columns[2] ('amount').n: must be an integer >= 0, got
-1``), never turned into a ``KeyError`` deep in a drift run; and the compressed arrays
inside it must never inflate beyond what the profile declares (a zlib bomb in
``values`` is refused after at most ``8 * n`` bytes).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
from datasketches import kll_doubles_sketch

from modelmonitor.core.stats.column_profile import decode_floats
from modelmonitor.core.stats.profile import PROFILE_FORMAT, PROFILE_VERSION, ReferenceProfile

#: A saved profile is small (< 1 MiB for 100 features, see profile.py); far larger is an attack.
MAX_PROFILE_BYTES = 64 << 20
#: The most exact values a numerical column may hold (8 bytes each once decoded).
MAX_EXACT_VALUES = 10_000_000
#: The sizes a KLL sketch's k may take (Apache DataSketches).
SKETCH_K_RANGE = (8, 65535)


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the field and what is wrong."""


def parse_profile(payload: bytes | str) -> ReferenceProfile:
    """Check and load a saved profile (JSON text or its UTF-8 bytes)."""
    if len(payload) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{len(payload):,} bytes is over the {MAX_PROFILE_BYTES:,}-byte limit")
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProfileError(f"not UTF-8 text (byte {exc.start}): not a JSON profile") from None
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ProfileError("not valid JSON: nested too deeply") from None
    return check_profile(data)


def check_profile(data: Any) -> ReferenceProfile:
    """Check a decoded profile document field by field, then build it."""
    if not isinstance(data, dict):
        raise ProfileError(f"must be a JSON object, got {_kind(data)}")
    if data.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"format: must be {PROFILE_FORMAT!r}, got {data.get('format')!r}")
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(
            f"version: this build reads version {PROFILE_VERSION}, got {data.get('version')!r}"
        )
    _count(data, "n_rows", "")
    limit = _field(data, "exact_limit", "")
    if limit is not None:
        _count(data, "exact_limit", "")
    k = _count(data, "sketch_k", "")
    if not SKETCH_K_RANGE[0] <= k <= SKETCH_K_RANGE[1]:
        raise ProfileError(f"sketch_k: must be between {SKETCH_K_RANGE[0]} and {SKETCH_K_RANGE[1]}")
    columns = _field(data, "columns", "")
    if not isinstance(columns, list):
        raise ProfileError(f"columns: must be a list, got {_kind(columns)}")
    names: set[str] = set()
    for i, col in enumerate(columns):
        where = f"columns[{i}]"
        if not isinstance(col, dict):
            raise ProfileError(f"{where}: must be an object, got {_kind(col)}")
        name = _field(col, "name", where)
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{where}.name: must be a non-empty string")
        if name in names:
            raise ProfileError(f"{where}.name: {name!r} appears twice")
        names.add(name)
        where = f"{where} ({name!r})"
        kind = _field(col, "type", where)
        if kind == "numerical":
            _check_numerical(col, where)
        elif kind == "categorical":
            _check_categorical(col, where)
        else:
            raise ProfileError(f"{where}.type: must be numerical or categorical, got {kind!r}")
    try:
        return ReferenceProfile.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:  # pragma: no cover - checked above
        raise ProfileError(str(exc)) from None


def _check_numerical(col: Mapping[str, Any], where: str) -> None:
    n = _count(col, "n", where)
    for key in ("n_missing", "n_pos_inf", "n_neg_inf"):
        _count(col, key, where)
    lo, hi, mean = (_number_or_null(col, key, where) for key in ("min", "max", "mean"))
    m2 = _number_or_null(col, "m2", where)
    if n > 0:
        for key, value in (("min", lo), ("max", hi), ("mean", mean), ("m2", m2)):
            if value is None or not math.isfinite(value):
                raise ProfileError(f"{where}.{key}: must be a finite number when n > 0")
        assert lo is not None
        assert hi is not None
        assert m2 is not None
        if lo > hi:
            raise ProfileError(f"{where}.min: {lo} is greater than max {hi}")
        if m2 < 0:
            raise ProfileError(f"{where}.m2: must be >= 0, got {m2}")
    has_values, has_sketch = "values" in col, "sketch" in col
    if has_values == has_sketch:
        raise ProfileError(f"{where}: must have exactly one of values and sketch")
    if has_values:
        if n > MAX_EXACT_VALUES:
            raise ProfileError(f"{where}.n: {n:,} exact values is over {MAX_EXACT_VALUES:,}")
        values = _floats(col["values"], n, f"{where}.values")
        if values.size and (not np.all(np.isfinite(values)) or np.any(np.diff(values) < 0)):
            raise ProfileError(f"{where}.values: must be finite and sorted")
        if values.size and (values[0] < lo or values[-1] > hi):
            raise ProfileError(f"{where}.values: outside [min, max]")
    else:
        raw = _base64(col["sketch"], f"{where}.sketch")
        problem = kll_problem(raw, n)
        if problem:
            raise ProfileError(f"{where}.sketch: {problem}")


def _check_categorical(col: Mapping[str, Any], where: str) -> None:
    cats, counts = _field(col, "categories", where), _field(col, "counts", where)
    _count(col, "n_missing", where)
    if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
        raise ProfileError(f"{where}.categories: must be a list of strings")
    if len(set(cats)) != len(cats):
        raise ProfileError(f"{where}.categories: a category appears twice")
    if not isinstance(counts, list) or len(counts) != len(cats):
        raise ProfileError(f"{where}.counts: must be a list as long as categories")
    for j, c in enumerate(counts):
        if not _is_int(c) or c < 0:
            raise ProfileError(f"{where}.counts[{j}]: must be an integer >= 0, got {c!r}")


_KLL_FAMILY = 15
_KLL_FULL_HEADER = 20


def kll_problem(raw: bytes, n: int) -> str | None:
    """What is wrong with a serialized KLL sketch of ``n`` doubles, None when sound.

    The sketch library trusts its input: level offsets out of order or a NaN item make
    later queries read out of bounds and crash the process. So the layout (preamble,
    level offsets, items) is checked here, byte by byte, before the library sees it.
    """
    if len(raw) < 8:
        return "not a KLL sketch (too short)"
    pre_ints, serial, family, flags, k = struct.unpack_from("<BBBBH", raw)
    if family != _KLL_FAMILY:
        return "not a KLL sketch (wrong family)"
    if not SKETCH_K_RANGE[0] <= k <= SKETCH_K_RANGE[1]:
        return f"not a KLL sketch (k {k})"
    empty, single = bool(flags & 1), bool(flags & 4)
    if pre_ints == 2 and empty:
        if len(raw) != 8 or n != 0:
            return f"an empty sketch, but n is {n}" if n else "not a KLL sketch (size)"
        return _deserializes(raw)
    if pre_ints == 2 and single and serial == 2:
        if len(raw) != 16 or n != 1:
            return "a one-value sketch must hold n = 1"
        return _finite(raw, 8, 1) or _deserializes(raw)
    if pre_ints != 5 or serial != 1 or empty or single or len(raw) < _KLL_FULL_HEADER:
        return "not a KLL sketch (preamble)"
    (count,) = struct.unpack_from("<Q", raw, 8)
    levels_n = raw[18]
    if count != n:
        return f"holds {count} values but n is {n}"
    if not 1 <= levels_n <= 60:
        return f"not a KLL sketch ({levels_n} levels)"
    items_at = _KLL_FULL_HEADER + 4 * levels_n + 16
    rest = len(raw) - items_at
    if rest < 0 or rest % 8:
        return "not a KLL sketch (size)"
    levels = list(struct.unpack_from(f"<{levels_n}I", raw, _KLL_FULL_HEADER))
    levels.append(levels[0] + rest // 8)  # the capacity: the last offset is not stored
    if any(b < a for a, b in itertools.pairwise(levels)):
        return "not a KLL sketch (level offsets out of order)"
    weight = sum((levels[i + 1] - levels[i]) << i for i in range(levels_n))
    if weight != n:
        return f"its levels weigh {weight} but n is {n}"
    return _finite(raw, items_at - 16, 2 + rest // 8) or _deserializes(raw)


def _finite(raw: bytes, at: int, count: int) -> str | None:
    items = np.frombuffer(raw, dtype="<f8", count=count, offset=at)
    return None if np.all(np.isfinite(items)) else "holds a value that is not finite"


def _deserializes(raw: bytes) -> str | None:
    try:
        kll_doubles_sketch.deserialize(raw)
    except Exception as exc:  # a third-party decoder: any refusal is "not a sketch"
        return f"not a KLL sketch ({exc})"
    return None


def _field(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ProfileError(f"{_path(where, key)}: missing")
    return d[key]


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(d: Mapping[str, Any], key: str, where: str) -> int:
    v = _field(d, key, where)
    if not _is_int(v) or v < 0:
        raise ProfileError(f"{_path(where, key)}: must be an integer >= 0, got {v!r}")
    return int(v)


def _number_or_null(d: Mapping[str, Any], key: str, where: str) -> float | None:
    v = _field(d, key, where)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ProfileError(f"{_path(where, key)}: must be a number or null, got {_kind(v)}")
    return float(v)


def _base64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise ProfileError(f"{where}: must be a base64 string, got {_kind(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProfileError(f"{where}: not valid base64") from None


def _floats(text: Any, n: int, where: str) -> np.ndarray:
    try:
        return decode_floats(_base64(text, where), n)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
