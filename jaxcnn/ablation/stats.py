"""The statistics an ablation's verdict follows from: mean ± sample std per
arm, and for each claim the mean of the differences between two arms paired
by seed with its 95% confidence interval (Student's t with n - 1 degrees of
freedom). The verdict follows from the interval alone:

    the whole interval on the claimed side of 0   -> "reproduced"
    the whole interval on the other side          -> "not reproduced"
    the interval contains 0                       -> "inconclusive at this budget"

A claim of no difference ("A ~ B within m") is reproduced when the whole
interval lies inside [-m, m], not reproduced when it lies wholly outside, and
inconclusive otherwise.
"""

from __future__ import annotations

import math

import numpy as np

# Two-sided 95% quantiles t_{0.975, df} of Student's t distribution (standard tables), df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this budget"


def t975(df: int) -> float:
    """t_{0.975, df}: the table for df <= 30, then the next tabulated df above, then the normal 1.960."""
    if df < 1:
        raise ValueError(f"a confidence interval needs at least 2 paired values (df >= 1), got df={df}.")
    if df <= len(_T975):
        return _T975[df - 1]
    for limit, value in _T975_LARGE:
        if df <= limit:
            return value
    return 1.960


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired_difference(a, b) -> dict:
    """Mean of a_i - b_i over seeds i with its 95% CI: {"mean", "low", "high", "n", "std"}."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"paired differences need two equally long lists of >= 2 values, got {len(d)}.")
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = t975(len(d) - 1) * std / math.sqrt(len(d))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(len(d)), "std": std}


def verdict(diff: dict, op: str, margin: float = 0.0) -> str:
    """The verdict for the claim "A op B" (op '>', '<', or '~' within `margin`) from the CI of mean(A - B)."""
    if op not in (">", "<", "~"):
        raise ValueError(f"claim operator must be '>', '<' or '~', got {op!r}.")
    low, high = diff["low"], diff["high"]
    if op == "~":
        if -margin <= low and high <= margin:
            return REPRODUCED
        return NOT_REPRODUCED if low > margin or high < -margin else INCONCLUSIVE
    if low > 0:
        return REPRODUCED if op == ">" else NOT_REPRODUCED
    if high < 0:
        return REPRODUCED if op == "<" else NOT_REPRODUCED
    return INCONCLUSIVE
