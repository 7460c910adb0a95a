"""Committed ablation results are written over only by the design they were made with.

    check_name("conv_mode")                      # ablation names are identifiers, never paths
    differences(recorded_run_json, config)       # [] when config runs the committed design

A committed result (OUT/run.json with "quick": false) was made from a design:
its seeds, its budget (num_steps, batch_size) and its arms (labels and
overrides). A later run writes over it only when it runs that design, or more
of it (a superset of the seeds, the rest the same), or the design now
committed in the ablation's config file itself (no --config overrides of
seeds, budget or arms) when that is no smaller (as many seeds and steps at
least): a design changed by a commit before its run. Anything else goes under
runs/ (scripts/ablate.py does so when --out is not given) or needs --force.
So a smoke run with three seeds and three steps can never replace twenty seeds
of 4,700 steps.
"""

from __future__ import annotations

import json
import os
import re
from typing import Optional

NAME = re.compile(r"^[a-z0-9_]+$")


def check_name(name) -> str:
    """`name` if it is an ablation identifier (a-z, 0-9, _), else ValueError: a name is never a path."""
    if not isinstance(name, str) or not NAME.match(name) or len(name) > 64:
        raise ValueError(f"ablation name {name!r} must be an identifier (a-z, 0-9 and _, at most 64 characters), "
                         "not a path; see python scripts/ablate.py --list (--ablations DIR picks the folder).")
    return name


def committed(out: str) -> Optional[dict]:
    """OUT/run.json when it records a full (not --quick) result, else None."""
    path = os.path.join(out, "run.json")
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) and run.get("quick") is False else None


def design(config) -> dict:
    """The design a run of `config` (an ablation config, --quick and overrides applied) would write."""
    ab = config.ablation
    return {"seeds": [int(s) for s in ab.seeds], "num_steps": int(config.num_steps),
            "batch_size": int(config.batch_size),
            "arms": {str(a["label"]): {k: _plain(v) for k, v in dict(a.get("overrides", {})).items()}
                     for a in ab.arms}}


def _plain(v):
    return json.loads(json.dumps(v, default=str)) if not isinstance(v, tuple) else [_plain(x) for x in v]


def _seeds(seeds) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def differences(run: dict, config, file_config=None) -> list[str]:
    """What in `config`'s design falls short of, or differs from, the committed `run` (run.json): [] when the
    run may write over it. file_config: the ablation's config as its file defines it (no overrides): a run of
    exactly that design, no smaller than the committed one, may replace it."""
    new = design(config)
    if file_config is not None and design(file_config) == new:
        old_steps = run.get("num_steps")
        old_steps = max(old_steps) if isinstance(old_steps, list) else int(old_steps or 0)
        if len(new["seeds"]) >= len(run.get("seeds", [])) and new["num_steps"] >= old_steps:
            return []
    out = []
    old_seeds = [int(s) for s in run.get("seeds", [])]
    if not set(old_seeds) <= set(new["seeds"]):
        out.append(f"seeds ({_seeds(new['seeds'])} vs the committed {_seeds(old_seeds)})")
    steps = run.get("num_steps")
    if isinstance(steps, list) or (steps is not None and int(steps) != new["num_steps"]):
        if not (isinstance(steps, list) and set(steps) == {new["num_steps"]}):
            out.append(f"num_steps ({new['num_steps']} vs the committed {steps})")
    if run.get("batch_size") is not None and int(run["batch_size"]) != new["batch_size"]:
        out.append(f"batch_size ({new['batch_size']} vs the committed {run['batch_size']})")
    old_arms = {str(a.get("label")): dict(a.get("overrides", {})) for a in run.get("arms", []) if isinstance(a, dict)}
    if old_arms and list(old_arms) != list(new["arms"]):
        out.append(f"arms ({', '.join(new['arms'])} vs the committed {', '.join(old_arms)})")
    elif old_arms:
        for label, overrides in new["arms"].items():
            # run.json adds a tuned arm's chosen value to its overrides: the config's own must all be there
            changed = [k for k, v in overrides.items() if k not in old_arms[label] or _plain(old_arms[label][k]) != v]
            if changed:
                out.append(f"arm {label!r} ({', '.join(changed)} differ from the committed overrides)")
    return out
