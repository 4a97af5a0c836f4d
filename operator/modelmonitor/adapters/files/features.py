"""Features files: a YAML or JSON list of ``{name, type}`` that types and selects columns.

A features file overrides type inference (an integer-coded column can be declared
categorical) and restricts reading to the columns it lists, in its order. Accepted shapes::

    - {name: amount, type: numerical}        # YAML list
    [{"name": "amount", "type": "numerical"}] # JSON list
    features: [...]                           # either, under a ``features`` key
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from modelmonitor.adapters.files.errors import DataError
from modelmonitor.core.dataset import FEATURE_TYPES, Feature


def load_features_file(path: str | Path) -> list[Feature]:
    """Parse a features file into features; a :class:`DataError` names what is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(p, "features file not found") from None
    except IsADirectoryError:
        raise DataError(p, "features file is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(p, f"cannot read features file: {exc}") from None
    if not text.strip():
        raise DataError(p, "features file is empty")
    raw = _parse(p, text)
    return parse_features(raw, source=p)


def _parse(path: Path, text: str) -> object:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"features file is not valid JSON: {exc}") from None
    import yaml  # only features files in YAML pay for the import

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(path, f"features file is not valid YAML: {first}") from None


def parse_features(raw: object, *, source: object = "features") -> list[Feature]:
    """Validate a decoded features document (list, or mapping with a ``features`` list)."""
    if isinstance(raw, dict) and "features" in raw:
        raw = raw["features"]
    if not isinstance(raw, list) or not raw:
        raise DataError(source, "features file must be a non-empty list of {name, type}")
    features: list[Feature] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise DataError(source, f"feature #{i + 1} must be a mapping with name and type")
        name, ftype = item.get("name"), item.get("type")
        if not isinstance(name, str) or not name:
            raise DataError(source, f"feature #{i + 1} has no name")
        if ftype not in FEATURE_TYPES:
            raise DataError(
                source,
                f"feature {name!r}: type must be one of {', '.join(FEATURE_TYPES)}, got {ftype!r}",
            )
        if name in seen:
            raise DataError(source, f"feature {name!r} is listed twice")
        seen.add(name)
        features.append(Feature(name, ftype))
    return features


def check_present(features: Sequence[Feature], available: Sequence[str], *, source: object) -> None:
    """Raise when a listed feature is not a column of the data."""
    have = set(available)
    missing = [f.name for f in features if f.name not in have]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        cols = ", ".join(list(available)[:10]) + (" ..." if len(available) > 10 else "")
        raise DataError(
            source,
            f"features file lists column(s) not in the data: {shown} (columns: {cols})",
        )
