"""Warning classes for degenerate input to the statistics engine.

Like scipy's, they warn instead of raising: the result is still defined (for example a
test on a constant sample returns a p-value of 1.0), but the caller should know that the
number rests on degenerate data.
"""

from __future__ import annotations


class DegenerateInputWarning(RuntimeWarning):
    """The input makes the statistic degenerate (constant sample, a single category...)."""


class ApproximationWarning(UserWarning):
    """The result rests on an approximation the caller may not expect (e.g. a capped p-value)."""
