"""The statistics an ablation's verdict follows from, with the quantiles and
p values from scipy.stats: mean ± sample std per arm, and for each claim the
mean of the differences between two arms paired by seed, its 95% confidence
interval (Student's t with n - 1 degrees of freedom) and its p value.

    "A > B" / "A < B"     p: the two-sided paired t test of mean(A - B) = 0
    "A ~ B within m"      p: TOST (two one-sided paired t tests against -m and +m), the larger of the two
    "A >= B within m"     p: twice the one-sided paired t test of H0 mean(A - B) <= -m (non-inferiority;
                          "A <= B within m": of H0 mean(A - B) >= +m), capped at 1: p < alpha exactly when
                          the 95% interval lies above -m (below +m), the one-sided test at alpha / 2
    "A / B > r" (ratio)   p: the two-sided paired t test of mean(log A - log B) = log r; the interval is
                          exp of the log-difference's interval (a ratio of geometric means)

The verdict at level alpha (ALPHA = 0.05) from a p value p:

    p < alpha and the estimate on the claimed side       -> "reproduced"
    p < alpha and the estimate on the other side         -> "not reproduced"
    otherwise                                            -> "inconclusive at this budget"

An equivalence is reproduced when its TOST p < alpha (its 90% interval inside [-m, m]); its unadjusted
verdict is "not reproduced" when the 95% interval lies wholly outside [-m, m]. A p value tests the
equivalence only, so under a family-wise correction (holm(), a p_holm in place of p) an equivalence is
reproduced or inconclusive. A non-inferiority claim ("A >= B within m") is the same: reproduced when its p
(or p_holm) < alpha, its unadjusted verdict "not reproduced" when the 95% interval lies wholly below -m (for
"<=": above +m), inconclusive otherwise.

The unadjusted verdict (`verdict_unadjusted`) uses the claim's own p; the family-wise one (`verdict`) uses
p_holm, Holm's step-down adjustment over every claim of the family (jaxcnn.ablation.family).

Steps to a target (steps_to_target) are censored where a run never reaches its target within its budget: such
a value is math.inf ("more than the budget"), never a number averaged in. A comparison with any censored value
has no t interval; compare() then draws the verdict from an exact two-sided sign test on the pairs whose order
is known (a censored value is later than any reached one; a pair censored on both sides is a tie and left out),
and reports how many values were censored.
"""

from __future__ import annotations

import math

import numpy as np

from jaxcnn._extras import require

_st = None  # scipy.stats (the `stats` extra), imported by the first interval or p-value: the core stays light

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this budget"
ALPHA = 0.05
LEVEL = 0.95


def _scipy():
    global _st
    if _st is None:
        _st = require("scipy.stats")
    return _st


def t_quantile(q: float, df: float) -> float:
    """The q quantile of Student's t with df degrees of freedom (scipy.stats.t.ppf), any df >= 1."""
    if not df >= 1:
        raise ValueError(f"a confidence interval needs at least 2 paired values (df >= 1), got df={df}.")
    return float(_scipy().t.ppf(q, df))


def t975(df: int) -> float:
    """t_{0.975, df}, the two-sided 95% point of Student's t, for any df >= 1."""
    return t_quantile(0.975, df)


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"mean_std needs a non-empty list of numbers, got {len(np.atleast_1d(v))} values of "
                         f"shape {v.shape}.")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    """a and b as float arrays of one equal length >= 2; ValueError naming what is wrong otherwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"paired values must be two flat lists, got shapes {a.shape} and {b.shape}.")
    if len(a) != len(b):
        raise ValueError(f"paired values must be two lists of the same length (one value per seed in each), "
                         f"got {len(a)} and {len(b)}.")
    if len(a) < 2:
        raise ValueError(f"paired differences need two equally long lists of >= 2 values, got {len(a)}.")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("paired values contain NaN: a run without a value cannot be paired; rerun it or drop its "
                         "seed from both arms.")
    return a, b


def paired_difference(a, b, level: float = LEVEL) -> dict:
    """Mean of a_i - b_i over seeds i with its `level` CI: {"mean", "low", "high", "n", "std"}. Refuses lists of
    unequal length, fewer than 2 pairs, NaN, and censored (infinite) values (see compare())."""
    a, b = _pairs(a, b)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("censored values (a run that never reached its target: inf) have no t interval; use "
                         "stats.compare(), which falls back on a sign test.")
    d = a - b
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = t_quantile(0.5 + level / 2, len(d) - 1) * std / math.sqrt(len(d))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(len(d)), "std": std}


def _t_sf(t: float, df: int) -> float:
    """P(T >= t); with a zero standard error t is +-inf or nan (0/0: no evidence either way, 0.5)."""
    return 0.5 if math.isnan(t) else float(_scipy().t.sf(t, df))


def _t_stat(mean: float, std: float, n: int, null: float) -> float:
    se = std / math.sqrt(n)
    if se == 0.0:
        return math.nan if mean == null else math.copysign(math.inf, mean - null)
    return (mean - null) / se


def p_value(diff: dict, op: str, margin: float = 0.0) -> float:
    """The p value of a claim "A op B" from its paired difference (mean, std, n of A - B): two-sided paired t
    for '>' and '<', TOST (the larger one-sided p) for '~' within `margin`, twice the one-sided p against the
    margin for '>=' and '<=' (non-inferiority)."""
    _check_op(op)
    mean, std, n = diff["mean"], diff["std"], diff["n"]
    df = n - 1
    if op == "~":
        lower = _t_sf(_t_stat(mean, std, n, -margin), df)  # H0: mu <= -m
        upper = _t_sf(-_t_stat(mean, std, n, margin), df)  # H0: mu >= +m
        return max(lower, upper)
    if op == ">=":  # H0: mu <= -m, one-sided, doubled (the 95% interval's lower end above -m)
        return min(1.0, 2.0 * _t_sf(_t_stat(mean, std, n, -margin), df))
    if op == "<=":  # H0: mu >= +m
        return min(1.0, 2.0 * _t_sf(-_t_stat(mean, std, n, margin), df))
    t = _t_stat(mean, std, n, 0.0)
    return 1.0 if math.isnan(t) else min(1.0, 2.0 * _t_sf(abs(t), df))


OPS = (">", "<", "~", ">=", "<=")
MARGIN_OPS = ("~", ">=", "<=")  # the claims tested against a margin: equivalence and non-inferiority


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"claim operator must be one of {', '.join(OPS)}, got {op!r}.")


def verdict(diff: dict, op: str, margin: float = 0.0, p: float | None = None, alpha: float = ALPHA) -> str:
    """The verdict for the claim "A op B" (op '>', '<', or one of MARGIN_OPS within `margin`) at level alpha.
    `p` defaults to the claim's own p value (the unadjusted verdict); pass p_holm for the family-wise one. The
    side follows the sign of mean(A - B) (for a ratio claim, of mean(log A - log B) - log r)."""
    _check_op(op)
    unadjusted = p is None
    p = p_value(diff, op, margin) if p is None else float(p)
    if op in MARGIN_OPS:
        if p < alpha:
            return REPRODUCED
        below, above = diff["high"] < -margin, diff["low"] > margin
        outside = below or above if op == "~" else below if op == ">=" else above
        return NOT_REPRODUCED if unadjusted and outside else INCONCLUSIVE
    if not p < alpha or diff["mean"] == 0.0:
        return INCONCLUSIVE
    return REPRODUCED if (diff["mean"] > 0) == (op == ">") else NOT_REPRODUCED


def sign_test(a, b) -> dict:
    """Exact two-sided sign test of a_i vs b_i (scipy.stats.binomtest) for values where inf means censored
    (later than any finite value; two censored values tie). {"n", "a_larger", "b_larger", "ties", "p_value"}."""
    a, b = _pairs(a, b)
    both = np.isinf(a) & np.isinf(b)
    larger_a = int(np.sum((a > b) & ~both))
    larger_b = int(np.sum((a < b) & ~both))
    decided = larger_a + larger_b
    p = 1.0 if decided == 0 else float(_scipy().binomtest(larger_a, decided, 0.5).pvalue)
    return {"n": int(len(a)), "a_larger": larger_a, "b_larger": larger_b, "ties": int(len(a) - decided),
            "p_value": p}


def ratio_interval(a, b, level: float = LEVEL) -> dict:
    """The ratio A / B of paired positive values as exp of the paired t interval of log a_i - log b_i:
    {"ratio" (the ratio of geometric means), "low", "high", "n", "log_mean", "log_std"}. Refuses censored
    (infinite) and non-positive values."""
    a, b = _pairs(a, b)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a ratio interval needs every run to reach its target: censored values (inf) have no "
                         "log; see the sign test in stats.compare().")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a ratio interval needs positive values (steps to a target are >= 1).")
    d = paired_difference(np.log(a), np.log(b), level)
    return {"ratio": math.exp(d["mean"]), "low": math.exp(d["low"]), "high": math.exp(d["high"]), "n": d["n"],
            "log_mean": d["mean"], "log_std": d["std"]}


def compare(a, b, op: str, margin: float = 0.0, ratio: float | None = None) -> dict:
    """Everything a claim row needs from its per-seed values a (arm A) and b (arm B): {"difference": {mean,
    low, high, n, std}, "p_value", "method", "censored": [in A, in B], "verdict_unadjusted"}.

    method "paired t" (no censored value): the paired difference and p_value(); "paired t on log ratios"
    (ratio r given, "A / B op r"): the difference is of log a - log b - log r, the interval and the mean shown as
    the ratio in "ratio"; "sign test" (a censored value): the mean, low and high are None (no interval exists),
    the p value is the exact sign test's, refused for an equivalence (inconclusive: no margin can be checked)."""
    _check_op(op)
    a_arr, b_arr = _pairs(a, b)
    censored = [int(np.isinf(a_arr).sum()), int(np.isinf(b_arr).sum())]
    if any(censored):
        s = sign_test(a_arr, b_arr)
        diff = {"mean": None, "low": None, "high": None, "n": s["n"], "std": None}
        sign = (s["a_larger"] > s["b_larger"]) - (s["a_larger"] < s["b_larger"])
        if op in MARGIN_OPS:  # a sign test checks no margin
            p, v = 1.0, INCONCLUSIVE
        else:
            p = s["p_value"]
            v = verdict({"mean": float(sign), "low": 0.0, "high": 0.0}, op, p=p) if sign else INCONCLUSIVE
            v = v if p < ALPHA else INCONCLUSIVE
        return {"difference": diff, "p_value": p, "method": "sign test", "censored": censored, "sign_test": s,
                "verdict_unadjusted": v}
    if ratio is not None:
        if not ratio > 0:
            raise ValueError(f"a ratio claim's ratio must be positive, got {ratio}.")
        r = ratio_interval(a_arr, b_arr)
        shift = math.log(ratio)
        margin = math.log(margin) if op == "~" else 0.0  # "within a factor F": |log(A/B) - log r| <= log F
        diff = {"mean": r["log_mean"] - shift, "low": math.log(r["low"]) - shift, "high": math.log(r["high"]) - shift,
                "n": r["n"], "std": r["log_std"]}
        p = p_value(diff, op, margin)
        return {"difference": diff, "p_value": p, "method": "paired t on log ratios", "censored": censored,
                "ratio": {k: r[k] for k in ("ratio", "low", "high")}, "verdict_unadjusted": verdict(diff, op, margin)}
    diff = paired_difference(a_arr, b_arr)
    return {"difference": diff, "p_value": p_value(diff, op, margin), "method": "paired t", "censored": censored,
            "verdict_unadjusted": verdict(diff, op, margin)}


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p values, in the order given: sort ascending, p_(i) times (m - i + 1) for
    i = 1..m, made non-decreasing by a running maximum and capped at 1."""
    p = np.asarray(list(p_values), np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"Holm's adjustment needs p values in [0, 1], got {list(p_values)}.")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return [float(x) for x in out]


def p_text(p) -> str:
    """A p value as the tables print it: two significant digits, scientific below 0.001; "" for none."""
    return "" if p is None else f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"
