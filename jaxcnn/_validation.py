"""Checks shared by every public entry point: a wrong value is refused at the
boundary with a message that names the allowed values and the fix."""

from __future__ import annotations

import difflib
import operator
import re
from typing import Iterable

import numpy as np


def suggest(value: str, allowed: Iterable[str], n: int = 3) -> str:
    """' Did you mean ...?' for the closest of `allowed`, or ''."""
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=n, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def check_choice(what: str, value, allowed: Iterable[str]) -> None:
    """Raise ValueError unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"unknown {what} {value!r}; allowed: {', '.join(repr(a) for a in allowed)}."
            + suggest(value, allowed)
        )


def as_int(value, what: str, *, minimum=None, example=None) -> int:
    """`value` as a Python int: an int or a numpy/JAX integer scalar; bools, floats (even 2.0) and strings
    are refused (a float window or stride would otherwise be truncated silently: 1.5 -> 1)."""
    hint = f" e.g. {what}={example!r}." if example is not None else ""
    if isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", "")) == "bool":
        raise TypeError(f"{what} must be an int, got the bool {value!r};{hint or ' pass a number.'}")
    try:
        if hasattr(value, "dtype") and not str(value.dtype).startswith(("int", "uint")):
            raise TypeError
        out = operator.index(value)
    except TypeError:
        kind = type(value).__name__
        raise TypeError(f"{what} must be an int, got {value!r} ({kind}); a fractional size or step is "
                        f"not defined.{hint}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {out}.{hint}")
    return out


def as_pair(value, what: str, *, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each at least `minimum`. Floats (1.5, even 2.0), bools and strings
    are refused, never truncated."""
    example = 2 if minimum >= 1 else 0
    if isinstance(value, (str, bytes)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}; e.g. {what}={example}.")
    if not isinstance(value, (tuple, list)) and not (hasattr(value, "shape") and len(np.shape(value)) == 1):
        try:
            v = as_int(value, what)
        except TypeError:
            raise TypeError(f"{what} must be an int or a pair of ints, got {value!r} ({type(value).__name__}); "
                            f"e.g. {what}={example} or ({example}, {example}).") from None
        pair = (v, v)
    else:
        items = tuple(value)
        if len(items) != 2:
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r} ({len(items)} values); "
                             f"e.g. {what}=({example}, {example}).")
        try:
            pair = tuple(as_int(v, what) for v in items)
        except TypeError:
            raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}; e.g. {what}=({example}, "
                            f"{example}) (a fractional size or step is refused, not truncated).") from None
    if min(pair) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}; pass a positive {what}." if minimum == 1
                         else f"{what} must be >= {minimum}, got {value!r}.")
    return pair  # type: ignore[return-value]


def as_float(value, what: str, *, low=None, high=None, low_open: bool = False, example=None) -> float:
    """`value` as a finite Python float (ints accepted; bools, strings, NaN and Inf refused), in range."""
    hint = f" e.g. {what}={example!r}." if example is not None else ""
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, (int, float, np.integer,
                                                                                 np.floating)):
        raise TypeError(f"{what} must be a number, got {value!r} ({type(value).__name__}).{hint}")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{what} must be a finite number, got {out}.{hint}")
    if low is not None and (out <= low if low_open else out < low):
        raise ValueError(f"{what} must be {'>' if low_open else '>='} {low}, got {out}.{hint}")
    if high is not None and out > high:
        raise ValueError(f"{what} must be <= {high}, got {out}.{hint}")
    return out


_KINDS = {"float": "a floating-point", "real": "a real (integer or floating-point)", "int": "an integer"}


def check_array(x, what: str = "x", *, kind: str = "float", ndim=None, layout: str = "") -> None:
    """Refuse what is not an array of the right kind of numbers (and rank): a list, a str, a bool, complex or
    string dtype, or an integer array where floats are computed (kind "float"), in one line naming the fix.

    kind: "float" (floating dtypes only), "real" (integers or floats) or "int" (integers only)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        fix = "jnp.asarray(x)" if isinstance(x, (list, tuple, int, float)) else "an array"
        raise TypeError(f"{what} must be an array{' ' + layout if layout else ''}, got {type(x).__name__}; pass "
                        f"{fix}.")
    from jax import dtypes

    try:
        dtype = np.dtype(x.dtype)
    except TypeError:  # a JAX-only dtype (PRNG keys); bfloat16 is a numpy dtype through ml_dtypes
        raise TypeError(f"{what} must be {_KINDS[kind]} array, got dtype {x.dtype}.") from None
    floating = dtypes.issubdtype(dtype, np.floating)
    integer = dtypes.issubdtype(dtype, np.integer)
    ok = {"float": floating, "real": floating or integer, "int": integer}[kind]
    if not ok:
        if integer:
            fix = f"convert it with {what}.astype(jnp.float32) (and scale pixels to the range the model expects)"
        elif dtype == np.bool_:
            fix = f"convert it with {what}.astype(jnp.float32)" if kind != "int" else "pass integer positions"
        elif np.issubdtype(dtype, np.complexfloating):
            fix = f"pass a real array, e.g. jnp.abs({what}) or {what}.real"
        elif kind == "int":
            fix = f"pass integer positions, e.g. {what}.astype(jnp.int32)"
        else:
            fix = "pass numbers, not strings or objects"
        raise TypeError(f"{what} must be {_KINDS[kind]} array, got dtype {dtype}; {fix}.")
    if ndim is not None and len(x.shape) != ndim:
        raise ValueError(f"{what} must have rank {ndim}{' ' + layout if layout else ''}, got shape "
                         f"{tuple(x.shape)}.")


# A split expression, whole: NAME, NAME[from:to] (ints, percents or shards), an optional rounding, parts
# joined by "+" (TFDS's syntax). Checked as one string, so nothing after a valid prefix is ignored.
_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_BOUND = r"-?\d+(?:%|shard)?"
_PART = rf" *{_NAME} *(?:\[ *(?:{_BOUND})? *(?:: *(?:{_BOUND})? *)?\] *(?:\((?:closest|pct1_dropremainder)\))?)? *"
SPLIT_EXPRESSION = re.compile(rf"{_PART}(?:\+{_PART})*")


def check_split(spec, what: str = "split") -> str:
    """`spec` if it is a whole TFDS split expression ("train", "train[:90%]", "train[10:20]+test"), else a
    one-line ValueError naming `what` and examples."""
    if not isinstance(spec, str) or len(spec) > 200 or not SPLIT_EXPRESSION.fullmatch(spec):
        raise ValueError(f"cannot read {what} {spec!r}: it is not a split expression; write e.g. 'train', "
                         "'train[:90%]', 'train[90%:]', 'test[:1000]' or 'train[:10%]+test'.")
    return spec


def max_workers() -> int:
    """The most data worker processes or threads accepted: twice the CPU cores (at least 4). More only add
    processes that wait for cores, and each holds its own copy of the decoding libraries."""
    import os

    return max(4, 2 * (os.cpu_count() or 1))


def check_workers(value, what: str) -> int:
    """`value` if it is an int in 0..max_workers(), else a one-line ValueError naming `what`."""
    top = max_workers()
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"{what} must be an int in 0..{top} (twice this machine's {__import__('os').cpu_count()} "
                         f"cores), got {value!r}; e.g. {min(4, top)}.")
    return value
