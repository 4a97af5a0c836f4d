"""Inputs the fuzz tests found to escape a parser's own error type, kept as plain tests."""

from __future__ import annotations

import pytest

from modelmonitor.core.codecs.cloudevents import RESPONSE_TYPE, MalformedEventError, parse_events
from modelmonitor.core.codecs.inference import BadResponseError, parse_predictions


def test_empty_probability_lists_are_malformed_not_a_numpy_error() -> None:
    # {"predictions": [[]]} reached argmax of an empty row (ValueError)
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-type": RESPONSE_TYPE,
    }
    with pytest.raises(MalformedEventError, match="lists of sizes"):
        parse_events(headers, b'{"predictions": [[]]}')
    with pytest.raises(BadResponseError, match="lists of sizes"):
        parse_predictions("v1", {"predictions": [[], []]}, 2)
