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

# validate_tune and TUNE_METRICS (the schema of ablation.tune) live in spec; importable from here as before
from jaxcnn.ablation.spec import TUNE_METRICS, Arm, arm_config, validate_tune  # noqa: F401
from jaxcnn.train.errors import TrainingDiverged
from jaxcnn.train.workdir import read_metrics, write_atomic


def value_slug(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _inf_if_missing(v) -> float:
    """A trial's metric or loss, with a missing (null in run.json) or non-finite value as inf: a target never
    reached, a diverged trial."""
    return v if v is not None and math.isfinite(v) else math.inf


def choose(trials: list[dict]) -> dict:
    """The best trial: lowest metric, then lowest final training loss, then the first in the grid (a missing or
    non-finite value, as of a diverged trial, ranks last)."""
    def rank(i_t):
        i, t = i_t
        return (_inf_if_missing(t["metric"]), _inf_if_missing(t["train_loss"]), i)

    return min(enumerate(trials), key=rank)[1]


def tune_arms(config, arms, workdirs: str, train_one, summarize, log) -> dict:
    """{arm label: {"key", "metric", "trials": [{"value", "metric", "train_loss", "diverged"}], "chosen"}}
    (a diverged trial's metric and train_loss are None).
    train_one(arm, seed, workdir, num_steps) trains one run (raising TrainingDiverged if it diverges);
    summarize(workdir, config) is the runner's summary of a finished run's metrics."""
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
            text = "diverged" if trial["diverged"] else _metric_text(trial["metric"])
            cells.append(f"**{text}**" if trial["value"] == t["chosen"] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def _metric_text(metric) -> str:
    """A trial's metric in the table: a step count that never came (infinite in the run, null once the result
    is written to and read back from run.json, which has no infinity) is "not reached"."""
    metric = _inf_if_missing(metric)
    return "not reached" if math.isinf(metric) else f"{metric:g}"
