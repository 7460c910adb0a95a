"""Per-arm tuning of one setting before the seeds run: papers often compare
arms each at its own best setting (Krizhevsky et al. 2012, fig. 1: "the
learning rates for each network were chosen independently to make training
as fast as possible"). The ablation section says what to tune:

    c.ablation.tune = {"key": "optimizer.learning_rate",   # one of ablation.field's keys
                       "values": (0.003, 0.01, 0.03, 0.1),  # the grid, tried for every arm
                       "seed": 100,                         # a seed that no scored run uses
                       "metric": "steps_to_target",         # a training metric, lower is better
                       "num_steps": 0}                      # 0 = the ablation's num_steps

Each arm x value is one run of the training engine on the tuning seed, in
WORKDIRS/tune/ARM/VALUE (resumable like every run). The arm then runs its
scored seeds with the value whose metric is lowest (ties: the lower final
training loss, then the earlier value in the grid); a run that diverges counts
as worst. Only training metrics select: the test split never chooses a setting.
"""

from __future__ import annotations

import json
import math
import os

from jaxcnn.train.workdir import read_metrics, write_atomic

TUNE_METRICS = ("steps_to_target", "train_error", "train_loss")
_KEYS = ("key", "values", "seed", "metric", "num_steps")


def validate_tune(config, fields) -> None:
    """ablation.tune's own checks (when set): known keys, key among the ablated fields, a grid of at least two
    values, a training metric, and a seed that no scored run uses."""
    tune = config.ablation.tune
    if not tune:
        return
    name = config.ablation.name or "?"
    unknown = sorted(set(tune) - set(_KEYS))
    if unknown:
        raise ValueError(f"ablation {name!r}: unknown ablation.tune keys {unknown}; allowed: {list(_KEYS)}.")
    for k in ("key", "values", "seed", "metric"):
        if k not in tune:
            raise ValueError(f"ablation {name!r}: ablation.tune needs {k!r}, e.g. {{'key': "
                             "'optimizer.learning_rate', 'values': (0.01, 0.1), 'seed': 100, 'metric': "
                             "'steps_to_target'}.")
    if tune["key"] not in fields:
        raise ValueError(f"ablation {name!r}: ablation.tune.key {tune['key']!r} must be one of ablation.field's "
                         f"keys ({', '.join(fields)}): tuned arms may differ in it; add it to ablation.field.")
    values = list(tune["values"]) if isinstance(tune["values"], (tuple, list)) else []
    if len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise ValueError(f"ablation {name!r}: ablation.tune.values must be at least two distinct values, got "
                         f"{tune['values']!r}.")
    if tune["metric"] not in TUNE_METRICS:
        raise ValueError(f"ablation {name!r}: ablation.tune.metric must be a training metric, one of "
                         f"{', '.join(TUNE_METRICS)} (the test split never selects), got {tune['metric']!r}.")
    seed = tune["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"ablation {name!r}: ablation.tune.seed must be an int in 0..2**32-1, got {seed!r}.")
    if seed in set(config.ablation.seeds):
        raise ValueError(f"ablation {name!r}: ablation.tune.seed {seed} is one of the scored seeds "
                         f"{tuple(config.ablation.seeds)}; tune on a seed of its own, e.g. 100.")
    steps = tune.get("num_steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"ablation {name!r}: ablation.tune.num_steps must be an int >= 0 (0 = num_steps), "
                         f"got {steps!r}.")


def value_slug(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def choose(trials: list[dict]) -> dict:
    """The best trial: lowest metric, then lowest final training loss, then the first in the grid (a missing or
    non-finite value, as of a diverged trial, ranks last)."""
    def worst_if_missing(v):
        return v if v is not None and math.isfinite(v) else math.inf

    def rank(i_t):
        i, t = i_t
        return (worst_if_missing(t["metric"]), worst_if_missing(t["train_loss"]), i)

    return min(enumerate(trials), key=rank)[1]


def tune_arms(config, arms, workdirs: str, train_one, summarize, log) -> dict:
    """{arm label: {"key", "metric", "trials": [{"value", "metric", "train_loss", "diverged"}], "chosen"}}
    (a diverged trial's metric and train_loss are None).
    train_one(arm, seed, workdir, num_steps) trains one run (raising TrainingDiverged if it diverges);
    summarize(workdir, config) is the runner's summary of a finished run's metrics."""
    from jaxcnn.ablation.spec import Arm, arm_config
    from jaxcnn.train.engine import TrainingDiverged

    tune = config.ablation.tune
    key, metric, seed = tune["key"], tune["metric"], int(tune["seed"])
    steps = int(tune.get("num_steps", 0)) or int(config.num_steps)
    out = {}
    for arm in arms:
        trials = []
        for value in tune["values"]:
            trial_arm = Arm(arm.label, {**arm.overrides, key: value})
            wd = os.path.join(workdirs, "tune", arm.slug, value_slug(value))
            marker = os.path.join(wd, "diverged.json")
            diverged = os.path.exists(marker)
            if not diverged:
                try:
                    train_one(trial_arm, seed, wd, steps)
                except TrainingDiverged as e:
                    os.makedirs(wd, exist_ok=True)
                    write_atomic(marker, json.dumps({"diverged": str(e)}) + "\n")
                    diverged = True
            if diverged:
                trials.append({"value": value, "metric": None, "train_loss": None, "diverged": True, "wall_s": 0.0})
            else:
                c = arm_config(config, trial_arm, seed)
                info = summarize(read_metrics(os.path.join(wd, "metrics.jsonl")), c)
                trials.append({"value": value, "metric": float(info[metric]), "train_loss": info["train_loss"],
                               "diverged": False, "wall_s": info["wall_s"]})
            t = trials[-1]
            log(f"  tune {arm.label} {key}={value_slug(value)}: "
                + ("diverged" if t["diverged"] else f"{metric} {t['metric']:g}, train loss {t['train_loss']:.4f}"))
        best = choose(trials)
        out[arm.label] = {"key": key, "metric": metric, "seed": seed, "num_steps": steps, "trials": trials,
                          "chosen": best["value"]}
        log(f"  tune {arm.label}: {key}={value_slug(best['value'])}")
    return out


def tuning_table(tuning: dict) -> str:
    """The tuning runs as a Markdown table: one row per arm, one column per value, the chosen value in bold."""
    if not tuning:
        return ""
    first = next(iter(tuning.values()))
    values = [t["value"] for t in first["trials"]]
    head = (f"Tuning ({first['key']}, seed {first['seed']}, {first['num_steps']} steps; {first['metric']}, "
            "lower is better; the chosen value in bold):\n\n")
    lines = ["| arm | " + " | ".join(value_slug(v) for v in values) + " |",
             "|---|" + "---:|" * len(values)]
    for label, t in tuning.items():
        cells = []
        for trial in t["trials"]:
            text = "diverged" if trial["diverged"] else f"{trial['metric']:g}"
            cells.append(f"**{text}**" if trial["value"] == t["chosen"] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines)
