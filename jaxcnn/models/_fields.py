"""Checking a model's field values where a model is created (jaxcnn.create_model), once, before a network is
built from them: the kind of each value (from the field's default), finiteness, the ranges of the fields whose
meaning fixes one, conv_mode and the family's other choice fields, and the family's own rules between fields
(`Family.check`). A field given a wrong value is refused in one line naming the field and a valid value (a str
"False" for a bool would be truthy; 1.5 units or a dropout of 1.2 would fail deep inside Flax or silently train
nothing; an unknown block name would build another network). The modules check only their input.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxcnn._validation import check_choice
from jaxcnn.layers import CONV_MODES

# Fields whose meaning bounds their value: (low, high, low_open, high_open, example).
FLOAT_RANGES = {
    "dropout": (0.0, 1.0, False, True, 0.5),
    "dropout_rate": (0.0, 1.0, False, True, 0.5),
    "drop_path_rate": (0.0, 1.0, False, True, 0.4),
    "bn_momentum": (0.0, 1.0, False, False, 0.9),
    "bn_epsilon": (0.0, None, True, False, 1e-5),
    "compression": (0.0, 1.0, True, False, 0.5),
    "aux_weight": (0.0, None, False, False, 0.3),
    "spatial_scale": (0.0, None, True, False, 0.0625),
}

# Int fields whose smallest value is not 1 (a "padding" is >= 0): trunk_pools -1 means every pooling.
INT_MINIMUMS = {"trunk_pools": -1, "res_blocks": 0}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _module_defaults(module) -> dict:
    return {f.name: f.default for f in dataclasses.fields(module)
            if f.default is not dataclasses.MISSING and f.name not in ("parent", "name")}


def check_fields(spec, overrides: dict, *, where: str = "") -> None:
    """Refuse any field the variant `spec` would be built with, overridden by `overrides` ({field: value}),
    that it cannot take: every field is checked, the variant's own values too. `where` prefixes the name of
    an overridden field in the message (e.g. "config.model."); otherwise the message names the model."""
    module_defaults = _module_defaults(spec.module)
    fields = {**module_defaults, **spec.fields, **overrides}
    family = spec.family
    choices = dict(family.choices)
    if "conv_mode" in fields:
        choices["conv_mode"] = CONV_MODES
    for key, value in fields.items():
        named = where if key in overrides else ""
        reference = module_defaults.get(key)
        _check_one(spec.name, key, value, spec.fields.get(key) if reference is None else reference, named)
        if key in choices:
            try:
                check_choice(key, value, choices[key])
            except ValueError as e:
                raise ValueError(f"{named}{key}: {e}" if named else f"model {spec.name!r}: {e}") from None
    if family.check is not None:
        try:
            family.check(fields)
        except ValueError as e:
            raise ValueError(f"{where.rstrip('.')}: {e}" if where else str(e)) from None


def _check_one(model: str, key: str, value, default, where: str) -> None:
    name = f"{where}{key}" if where else f"field {key} of model {model!r}"

    def fail(what: str, example, error=ValueError):
        raise error(f"{name} must be {what}, got {value!r}; e.g. {example!r}.")

    minimum = INT_MINIMUMS.get(key, 0 if "padding" in key else 1)
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            fail("True or False", default, TypeError)
    elif _is_int(default):
        if not _is_int(value):
            fail("an int", default, TypeError)
        if value < minimum:
            fail(f"an int >= {minimum}", default)
    elif isinstance(default, float):
        if not _is_real(value):
            fail("a float", default, TypeError)
        if not math.isfinite(float(value)):
            fail("a finite number", default)
        if key in FLOAT_RANGES:
            low, high, low_open, high_open, example = FLOAT_RANGES[key]
            if (value <= low if low_open else value < low) or (
                    high is not None and (value >= high if high_open else value > high)):
                interval = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}" \
                           f"{')' if high_open or high is None else ']'}"
                fail(f"in {interval}", example)
    elif isinstance(default, str):
        if not isinstance(value, str):
            fail("a str", default, TypeError)
    elif isinstance(default, (tuple, list)) and default and all(_is_int(v) for v in default):
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            fail(f"a tuple of ints >= {minimum}", tuple(default), TypeError)
        if not all(_is_int(v) for v in value):
            fail(f"a tuple of ints >= {minimum}", tuple(default), TypeError)
        if any(v < minimum for v in value):
            fail(f"a tuple of ints >= {minimum}", tuple(default))
    elif isinstance(default, (tuple, list)) and default and all(isinstance(v, bool) for v in default):
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, (bool, np.bool_)) for v in value):
            fail("a tuple of True/False", tuple(default), TypeError)
