"""Claims as a family: every claim's row (its paired difference, p value and unadjusted verdict), the claims
that cannot fail set apart as checks, and Holm's step-down over the whole family, which gives each claim its
p_holm and its family-wise verdict.

The family (ALPHA = 0.05) is every claim in experiments/results/*/run.json of a committed (not quick) result
and every claim in experiments/detection/results.json, less the checks and the comparisons not made (rows
trained by different code versions). A claim's `verdict` is the family-wise one (reproduced / not reproduced
only where p_holm < ALPHA), `verdict_unadjusted` its own at ALPHA.

A claim that a later design replaces (that design's `ablation.supersedes`: a new, larger run at fresh seeds,
fixed before its runs) is superseded once the later result is committed: it leaves the family and is listed
apart with the name of the result that replaced it.

A check is a claim that cannot fail: the twin claim (the second arm is the first arm's function by
construction), any claim between the two twin arms, and an equivalence whose arm sits at the ceiling (test
accuracy 1, or error 0) on every seed. Checks are listed apart and not counted.

    rows = [claim_row(claim, a_values, b_values) for ...]      # unadjusted
    apply_holm([rows of every result..., detection claims...])   # p_holm and verdict, in place
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from jaxcnn.ablation import stats
from jaxcnn.ablation.config import split_superseded
from jaxcnn.ablation.spec import _CLAIM, _RATIO

ALPHA = stats.ALPHA
CHECK, CLAIM, NOT_COMPARED, SUPERSEDED = "check", "claim", "not compared", "superseded"
FAMILY = ("every claim in experiments/results/*/claims.csv (committed results) and in "
          "experiments/detection/results.json, less checks, comparisons not made and superseded claims")


def check_reason(claim, a, b, twin_arms: Optional[tuple] = None) -> Optional[str]:
    """Why `claim` (a spec.Claim) cannot fail, or None. `a`, `b`: its arms' per-seed values; `twin_arms`: the
    (first, second) arms of a twin_flip ablation, the second trained from the first's flipped kernels."""
    if twin_arms and {claim.a, claim.b} == set(twin_arms):
        return (f"{twin_arms[1]} is trained from {twin_arms[0]}'s flipped kernels: the same function at every "
                "step, equal by construction")
    if claim.op in stats.MARGIN_OPS:
        ceiling = 0.0 if claim.metric.endswith("error") else 1.0 if claim.metric == "eval_accuracy" else None
        # an equivalence with either arm at the ceiling; A >= B (accuracy) with A at 100%, A <= B (an error)
        # with A at 0: the claim holds whatever B does
        trivial = {"~": ((claim.a, a), (claim.b, b)),
                   ">=": ((claim.a, a),) if ceiling == 1.0 else (),
                   "<=": ((claim.a, a),) if ceiling == 0.0 else ()}[claim.op]
        for arm, values in trivial:
            if ceiling is not None and len(values) and all(float(v) == ceiling for v in values):
                return (f"{arm} is at the ceiling ({'100%' if ceiling else '0'}) on every seed: the difference can "
                        "only be the other arm's distance from it, not a comparison of two methods")
    return None


def claim_row(claim, a, b, twin_arms: Optional[tuple] = None) -> dict:
    """The row of one claim: {"claim", "difference", "a", "b", "p_value", "method", "censored",
    "verdict_unadjusted", "verdict", "p_holm", "kind"} (+ "ratio" for a ratio claim, "sign_test" where values
    are censored, "check_reason" for a check). verdict is the unadjusted one until apply_holm."""
    a = [float(x) for x in a]
    b = [float(x) for x in b]
    c = stats.compare(a, b, claim.op, claim.margin, ratio=claim.ratio)
    reason = check_reason(claim, a, b, twin_arms)
    row = {"claim": str(claim), "a": a, "b": b, **c, "verdict": c["verdict_unadjusted"], "p_holm": None,
           "kind": CHECK if reason else CLAIM}
    if reason:
        row["check_reason"] = reason
    return row


def summary_row(claim, stored: dict) -> dict:
    """The row of a claim whose per-seed values were not kept (an older results.csv), from its stored paired
    difference (mean, std, n): the same p value and verdict as from the values; no check can be made on it."""
    diff = {k: stored[k] for k in ("mean", "low", "high", "n", "std")}
    if claim.ratio is not None:
        raise ValueError(f"{claim}: a ratio claim needs its per-seed values.")
    p = stats.p_value(diff, claim.op, claim.margin)
    v = stats.verdict(diff, claim.op, claim.margin)
    return {"claim": str(claim), "difference": diff, "p_value": p, "method": "paired t (from the stored "
            "difference: mean, std, n)", "censored": [0, 0], "verdict_unadjusted": v, "verdict": v, "p_holm": None,
            "kind": CLAIM}


def by_kind(rows: list[dict]) -> tuple[list, list, list]:
    """(claims counted in the family, checks and comparisons not made, superseded claims) of claim rows, in
    their order: what the claims table and the overview list apart."""
    counted = [r for r in rows if r.get("kind", CLAIM) == CLAIM]
    superseded = [r for r in rows if r.get("kind") == SUPERSEDED]
    apart = [r for r in rows if r.get("kind", CLAIM) not in (CLAIM, SUPERSEDED)]
    return counted, apart, superseded


def mark_superseded(claims_by_result: dict, supersedes_by_result: dict) -> int:
    """Set kind SUPERSEDED (and "superseded_by") in place on every claim row that a committed result supersedes.
    claims_by_result: {result name: [claim rows]}; supersedes_by_result: {result name: ["RESULT: CLAIM", ...]}
    (its config's ablation.supersedes). A named result or claim that is not there is an error: the design that
    replaces it would otherwise leave the old claim counted. Returns how many rows were marked."""
    marked = 0
    for by, items in supersedes_by_result.items():
        for item in items:
            name, text = split_superseded(item)
            if name == by:
                raise ValueError(f"{by}: ablation.supersedes names its own claim {text!r}; a design supersedes an "
                                 "earlier result's claims.")
            if name not in claims_by_result:
                raise ValueError(f"{by} supersedes {item!r}, but there is no committed result {name!r} "
                                 f"(committed: {sorted(claims_by_result)}); correct the name in its config.")
            rows = [r for r in claims_by_result[name] if r["claim"] == text]
            if not rows:
                raise ValueError(f"{by} supersedes {item!r}, but {name}'s claims are "
                                 f"{[r['claim'] for r in claims_by_result[name]]}; write the claim as there.")
            for r in rows:
                if r.get("kind", CLAIM) == CHECK:
                    raise ValueError(f"{by} supersedes {item!r}, which is a check (it cannot fail), not a claim.")
                r["kind"], r["superseded_by"] = SUPERSEDED, by
                marked += 1
    return marked


def apply_holm(rows: list[dict], alpha: float = ALPHA) -> int:
    """Holm's step-down over the rows of kind "claim" (each with "p_value", "difference" and "claim"): sets
    each one's p_holm and family-wise verdict in place; a check or a comparison not made gets p_holm None and
    keeps its verdict. Returns the family's size."""
    family = [r for r in rows if r.get("kind", CLAIM) == CLAIM]
    adjusted = stats.holm([r["p_value"] for r in family])
    for r, p in zip(family, adjusted):
        r["p_holm"] = p
        op, margin = _op_margin(r["claim"])
        d = r["difference"]
        if d.get("mean") is None:  # censored values: the side is the sign test's
            s = r.get("sign_test", {})
            sign = (s.get("a_larger", 0) > s.get("b_larger", 0)) - (s.get("a_larger", 0) < s.get("b_larger", 0))
            d = {"mean": float(sign), "low": None, "high": None}
        r["verdict"] = stats.verdict(d, op, margin, p=p, alpha=alpha)
    for r in rows:
        if r.get("kind", CLAIM) != CLAIM:
            r["p_holm"] = None
    return len(family)


def _op_margin(text: str) -> tuple[str, float]:
    """The operator and margin of a claim's text (any claim form of jaxcnn.ablation.spec)."""
    r = _RATIO.match(text)
    if r and " / " in text.split(":", 1)[1]:
        return r.group(4), math.log(float(r.group(6))) if r.group(6) else 0.0
    m = _CLAIM.match(text)
    if not m:
        raise ValueError(f"not a claim: {text!r}")
    return m.group(3), float(m.group(5) or 0.0)


def gap_parts(claim, train_eval_accuracy: dict, eval_accuracy: dict) -> dict:
    """A generalization_gap claim "gap A > gap B" split into its parts: the paired difference (A - B) of the
    accuracy on the training images in eval mode (train) and of the test accuracy (test); the gap's change is
    train - test. Inputs: {arm: per-seed values}."""
    train = stats.paired_difference(train_eval_accuracy[claim.a], train_eval_accuracy[claim.b])
    test = stats.paired_difference(eval_accuracy[claim.a], eval_accuracy[claim.b])
    return {"claim": str(claim), "train_accuracy": train, "test_accuracy": test,
            "gap": train["mean"] - test["mean"]}


def steps_ratio(claim, a, b) -> dict:
    """For a steps_to_target claim, the ratio A / B of steps to the target with its 95% CI (exp of the paired t
    interval of log ratios), or the number of censored runs where any run never reached it."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    censored = int(np.isinf(a).sum() + np.isinf(b).sum())
    if censored:
        return {"claim": str(claim), "of": f"{claim.a} / {claim.b}", "censored": censored,
                "note": "no interval: a run never reached the target"}
    return {"claim": str(claim), "of": f"{claim.a} / {claim.b}", **stats.ratio_interval(a, b)}


def rule_verdicts(rules, rows: list[dict], key: str = "verdict") -> list[dict]:
    """Each rule cell's verdict from its claims' `key` verdicts: reproduced where, for one recommended arm R,
    every "eval_accuracy: R > X" is reproduced; not reproduced where every recommended arm loses to some other
    arm (one of its claims not reproduced); otherwise inconclusive."""
    by_claim = {r["claim"]: r for r in rows}
    out = []
    for title, rec, other in rules:
        per = {r: [by_claim[f"eval_accuracy: {r} > {x}"][key] for x in other] for r in rec}
        if any(all(v == stats.REPRODUCED for v in vs) for vs in per.values()):
            v = stats.REPRODUCED
        elif all(any(v == stats.NOT_REPRODUCED for v in vs) for vs in per.values()):
            v = stats.NOT_REPRODUCED
        else:
            v = stats.INCONCLUSIVE
        out.append({"cell": title, "recommended": list(rec), "others": list(other), key: v})
    return out
