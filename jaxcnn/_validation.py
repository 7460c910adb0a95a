"""Checks shared by every public entry point: a wrong value is refused at the
boundary with a message that names the allowed values and the fix."""

from __future__ import annotations

import difflib
from typing import Iterable


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


def as_pair(value, what: str, *, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each at least `minimum`."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{what} must be an int or a pair of ints, got {value!r}") from None
        if len(pair) != 2:
            raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}; pass a positive {what}.")
    return pair
