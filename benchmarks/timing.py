"""Interleaved-rounds timing, shared by every section.

A variant is a callable `run(n)` that performs n steps and returns only when
they are done (JAX variants block on their last output). Each round runs every
variant once, `reps` steps, in the rows of a Williams design (a Latin square
balanced for what runs just before), each row followed by its reverse, so that
drifts of the machine's load, and whatever one variant leaves behind for the
next (caches, spinning threads), hit every variant alike: over every 2n rounds
of n variants each variant is first twice and directly follows each other
variant twice, and after every even number of rounds all variants have the
same mean place in the order.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Variant:
    name: str
    run: Callable[[int], None]
    items: int = 0  # images per step (0: not a throughput measurement)
    note: str = ""
    times: list = field(default_factory=list)  # seconds per step, one per round
    first_call_s: float = 0.0  # the first step, compilation included


def stepping_variant(name: str, step: Callable, state, batch, key, items: int = 0, note: str = "") -> Variant:
    """A Variant running a train step `step(state, batch, key) -> (state, aux)` n times per call, carrying
    the state from call to call (the step may donate it) and blocking on the last one."""
    import jax

    box = [state]

    def run(n):
        s = box[0]
        for _ in range(n):
            s, _ = step(s, batch, key)
        jax.block_until_ready(s)
        box[0] = s

    return Variant(name, run, items=items, note=note)


def calling_variant(name: str, f: Callable, args: tuple, items: int = 0, note: str = "") -> Variant:
    """A Variant calling `f(*args)` n times per call and blocking on the last output (a jitted function of
    fixed inputs: an op, a layer, a gradient)."""
    import jax

    def run(n):
        for _ in range(n):
            out = f(*args)
        jax.block_until_ready(out)

    return Variant(name, run, items=items, note=note)


def warm_up(variants, calls: int = 2) -> None:
    """Compile and run each variant `calls` times, untimed but for the first call."""
    for v in variants:
        t0 = time.perf_counter()
        v.run(1)
        v.first_call_s = time.perf_counter() - t0
        for _ in range(calls - 1):
            v.run(1)


def calibrate(variants, target_s: float, max_reps: int = 50) -> int:
    """Steps per timed call so that the slowest variant takes about `target_s` per call."""
    slowest = 0.0
    for v in variants:
        t0 = time.perf_counter()
        v.run(1)
        slowest = max(slowest, time.perf_counter() - t0)
    return int(min(max_reps, max(1, math.ceil(target_s / max(slowest, 1e-9)))))


def williams_row(n: int, k: int) -> list:
    """Row k of the Williams square on 0..n-1: the first row 0, 1, n-1, 2, n-2, ..., each later row that row
    plus k (mod n). For even n the n rows put every ordered pair side by side once; for odd n the rows and
    their reverses do it twice (Williams 1949)."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    return [(i + k) % n for i in first]


def round_order(items, r: int) -> list:
    """The order of round r: row r // 2 of the Williams square, reversed when r is odd (with 3 variants, six
    rounds run all six permutations)."""
    items = list(items)
    order = [items[i] for i in williams_row(len(items), (r // 2) % len(items))] if items else []
    return order[::-1] if r % 2 else order


def interleaved(variants, rounds: int, reps: int) -> None:
    """Fill each variant's `times` with `rounds` measurements of seconds per step."""
    for r in range(rounds):
        for v in round_order(variants, r):
            t0 = time.perf_counter()
            v.run(reps)
            v.times.append((time.perf_counter() - t0) / reps)


def summary(times) -> dict:
    """median, min, max (seconds) and the spread (max - min) / median."""
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "max_s": max(times),
            "spread": (max(times) - min(times)) / med if med else 0.0, "rounds": len(times)}


def fmt_ms(s: dict) -> str:
    return f"{1e3 * s['median_s']:.3f} ms ({1e3 * s['min_s']:.3f}..{1e3 * s['max_s']:.3f})"


def paired(a_times, b_times) -> Optional[dict]:
    """Speed of a relative to b round by round: b's time / a's time within each round (> 1: a is faster).

    Both ran back to back in the same round, so a drift of the machine's load that spans rounds cancels
    out of each round's ratio; the median of these ratios is steadier than the ratio of medians.
    Returns median, quartiles (q1, q3), min, max and the share of rounds in which a was faster."""
    pairs = sorted(b / a for a, b in zip(a_times, b_times) if a > 0)
    if not pairs:
        return None
    q = statistics.quantiles(pairs, n=4, method="inclusive") if len(pairs) > 1 else [pairs[0]] * 3
    return {"median": statistics.median(pairs), "q1": q[0], "q3": q[2], "min": pairs[0], "max": pairs[-1],
            "a_faster": sum(r > 1 for r in pairs) / len(pairs), "rounds": len(pairs)}


def fmt_paired(p: Optional[dict]) -> str:
    return f"{p['median']:.3f} ({p['q1']:.3f}..{p['q3']:.3f})" if p else "—"


def ratio(a: Optional[dict], b: Optional[dict]) -> Optional[float]:
    """Speed of a relative to b: median time of b / median time of a (> 1: a is faster)."""
    if not a or not b:
        return None
    return b["median_s"] / a["median_s"]
