"""Verdicts on a paper's claim from our measured effect.

A claim is an expected effect (sign and size) of a change.  Given our estimate with a 95 % confidence
interval and p-value:

* **reproduced**: p < 0.05 and the estimate has the paper's sign;
* **not reproduced**: p < 0.05 with the opposite sign, or the interval excludes zero's neighbourhood of
  the paper's size: the interval is narrow enough (half-width < |paper effect| / 2) to have detected an
  effect of the paper's size, yet contains zero;
* **inconclusive at this scale**: everything else (too few seeds or too noisy to tell).
"""
from __future__ import annotations

import math

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive at this scale"


def verdict(effect: float, ci_half: float | None, p: float | None, paper_effect: float) -> str:
    """Classify one claim (see module docstring). NaN / missing statistics -> inconclusive."""
    if ci_half is None or p is None or any(map(math.isnan, (effect, ci_half, p))):
        return INCONCLUSIVE
    same_sign = (effect > 0) == (paper_effect > 0)
    if p < 0.05:
        return REPRODUCED if same_sign else NOT_REPRODUCED
    if ci_half < abs(paper_effect) / 2 and effect - ci_half <= 0 <= effect + ci_half:
        return NOT_REPRODUCED
    return INCONCLUSIVE
