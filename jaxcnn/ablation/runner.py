"""Running an ablation: every arm x seed is one run of the training engine in
its own workdir, so each gets the engine's parallel strategies, NaN policy,
checkpoints and exact resume. Rerunning the same ablation after a kill trains
nothing that finished; the run that was going on resumes from its checkpoint.
With `carry` (a folder; scripts/ablate.py passes OUT/runs) every finished run
also leaves a record there, and a run whose workdir is gone is taken from its
record instead of trained again (jaxcnn.ablation.carried).

    result = run_ablation(config, workdirs="runs/ablations/skip", carry="experiments/results/skip/runs")
    # {"rows", "curves", "claims", ...}: see jaxcnn.ablation.report for the files
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Callable, Optional

import numpy as np

from jaxcnn.ablation import carried, family, stats
from jaxcnn.ablation.extras import checked_arms_of, extras_of
from jaxcnn.ablation.spec import arm_config, arms_of, claims_of, fields_of, rules_of, validate_ablation
from jaxcnn.finetune import run_finetune
from jaxcnn.models import summary
from jaxcnn.train.engine import run
from jaxcnn.train.records import training_wall_seconds as wall_seconds
from jaxcnn.train.setup import build, load_data, reusable_parts
from jaxcnn.train.workdir import check_writable, read_metrics

_DATA_KEYS = ("dataset", "data_dir", "train_split", "eval_split", "eval_examples", "classes",
              "train_examples_per_class", "synthetic_shape", "synthetic_size", "num_classes")


def _data_cache():
    cache = {}

    def data_for(c):
        key = json.dumps([str(c[k]) for k in _DATA_KEYS] + ([c.seed] if c.dataset == "synthetic"
                                                             or c.train_examples_per_class else []))
        if key not in cache:
            cache[key] = load_data(c)
        return cache[key]

    return data_for


def _summary_of(records: list[dict], batch_size: int, target: float) -> dict:
    """Final training error/loss (the last log window), the curve, the first logged step at or below the
    target training error (math.inf if never: censored, see jaxcnn.ablation.stats), the median step time (the
    first window, which compiles, left out) and the training wall time of all its pieces from a run's
    metrics.jsonl records."""
    train = [r for r in records if "train_loss" in r]
    steps = np.array([r["step"] for r in train])
    error = np.array([1.0 - r.get("train_accuracy", np.nan) for r in train])
    times = [batch_size / r["images_per_sec"] for r in train[1:] if r.get("images_per_sec")]
    reached = steps[error <= target]
    return {"curve_steps": steps, "curve": error, "train_error": float(error[-1]),
            "train_loss": float(train[-1]["train_loss"]),
            "steps_to_target": float(reached[0]) if len(reached) else math.inf,
            "step_time_s": float(np.median(times)) if times else float("nan"),
            "wall_s": wall_seconds(train)}


def training_wall_seconds(records: list[dict]) -> float:
    """Deprecated: jaxcnn.train.records.training_wall_seconds (shared by every report)."""
    warnings.warn("jaxcnn.ablation.runner.training_wall_seconds moved to jaxcnn.train.records."
                  "training_wall_seconds; import it from there (the old path goes in the next release).",
                  DeprecationWarning, stacklevel=2)
    return wall_seconds(records)


# What every arm's row sums up over the seeds (mean, std; a censored metric: its count), and of those, what
# results.csv also lists seed by seed; the extras add their own metrics (Extra.metrics) to both.
ROW_METRICS = ("train_error", "train_loss", "eval_accuracy", "eval_error", "steps_to_target")
PER_SEED_METRICS = ("train_error", "steps_to_target")


def run_workdir(workdirs: str, arm, seed: int) -> str:
    """The workdir of one arm x seed: WORKDIRS/ARM/seedN."""
    return os.path.join(workdirs, arm.slug, f"seed{int(seed)}")


def from_record_only(workdirs: str, carry: Optional[str], arm, seed: int) -> bool:
    """Whether the run would be taken from its carried record: the record exists and the workdir does not (a
    workdir that exists always wins)."""
    return (carry is not None and not os.path.exists(run_workdir(workdirs, arm, seed))
            and os.path.exists(carried.path(carry, arm.slug, seed)))


class AblationRun:
    """What one run_ablation works on and leaves, handed to every extra (jaxcnn.ablation.extras)."""

    def __init__(self, config, arms, seeds, workdirs, data_for, log):
        self.config, self.arms, self.seeds, self.workdirs = config, arms, seeds, workdirs
        self.data_for, self.log = data_for, log
        self.per_seed, self.states, self.setups = {}, {}, {}
        self.compiled = {}  # an arm's config without its seed -> the build parts that carry its compiled steps
        self.tuning, self.pretraining = {}, {}
        self.carried_runs, self.started = [], 0

    def summary_of(self, records: list[dict], batch_size: int) -> dict:
        return _summary_of(records, batch_size, self.config.ablation.target_train_error)

    def build(self, c, train_data, eval_data):
        """The Setup of run config `c`; every seed of an arm after its first gets the first's model, optimizer
        and strategy, so its train and evaluation steps and its initialisation run the programs compiled for
        that first seed instead of compiling them again (the same programs: a fresh build compiles the same
        computation; tests/test_ablate.py checks the runs against separately built ones bit for bit)."""
        key = json.dumps({**c.to_dict(), "seed": None}, sort_keys=True, default=str)
        setup = build(c, train_data=train_data, eval_data=eval_data, **self.compiled.get(key, {}))
        self.compiled.setdefault(key, reusable_parts(setup))
        return setup


def run_ablation(config, *, workdirs: str, log: Callable[[str], None] = print,
                 stop_after_runs: Optional[int] = None, carry: Optional[str] = None) -> dict:
    """Train every arm for every seed (see the module docstring). `workdirs` holds one workdir per run
    (ARM/seedN); `carry`, if given, the records of finished runs (read and written). Returns rows (one per
    arm), per-seed values, curves, claims with their verdicts, the extras' figures, the arms as run, the
    training time and the runs taken from records ("carried_runs"); with ablation.tune also the tuning runs
    (jaxcnn.ablation.tuning). stop_after_runs: return after starting this many runs that were not finished (for
    tests). What an ablation adds to its runs (tuning, pretraining, the generalization gap, the eval-mode
    training error, the flipped twin, kernels, gradient norms, facts) is its extras (jaxcnn.ablation.extras),
    each called at the same points."""
    validate_ablation(config)
    check_writable(workdirs)
    carry = _carry_folder(config, carry, log)
    run_ = AblationRun(config, arms_of(config), [int(s) for s in config.ablation.seeds], workdirs, _data_cache(),
                       log)
    extras = extras_of(config)
    identity = {k: v for e in extras for k, v in e.carried_identity(run_).items()}
    for extra in extras:
        extra.before(run_)
    for ai, arm in enumerate(run_.arms):
        for seed in run_.seeds:
            _one_run(run_, extras, ai, arm, seed, carry, identity)
            if stop_after_runs is not None and run_.started >= stop_after_runs:
                return {"stopped": True}
    return _result(run_, extras)


def _carry_folder(config, carry: Optional[str], log) -> Optional[str]:
    """`carry`, checked writable, or None where this ablation's runs cannot be carried (said in the log)."""
    if carry is None:
        return None
    why = carried.unsupported(config)
    if why:
        log(f"  finished runs are not carried between machines for {config.ablation.name}: {why}")
        return None
    check_writable(carry)
    return carry


def _one_run(run_: AblationRun, extras, ai: int, arm, seed: int, carry: Optional[str], identity: dict) -> None:
    """One arm x seed: trained (or resumed, or found finished), or taken from its carried record; measured by the
    extras, its record written, its figures kept in run_."""
    c = arm_config(run_.config, arm, seed)
    for extra in extras:
        extra.configure(run_, ai, arm, seed, c)
    train_data, eval_data = run_.data_for(c)
    setup, record, train_records, kept = _train_or_carry(run_, extras, ai, arm, seed, c, train_data, eval_data,
                                                         carry, identity)
    run_.setups[(arm.label, seed)] = setup
    if not record.get("finished_before") and not record.get("carried"):
        run_.started += 1
    info = run_.summary_of(train_records, c.batch_size)
    info.update(eval_accuracy=record["eval_accuracy"], eval_error=1.0 - record["eval_accuracy"],
                eval_examples=len(eval_data), num_steps=record["step"], batch_size=c.batch_size)
    figures = {}
    for extra in extras:
        measured = extra.measure(run_, arm, seed, setup, record, kept)
        info.update(measured)
        figures.update({k: measured[k] for k in extra.kept_figures})
    if carry is not None and kept is None:
        carried.write(carry, arm, seed, c, setup.model_fields, [r for r in train_records if "train_loss" in r],
                      {"step": record["step"], "eval_accuracy": record["eval_accuracy"]}, {**identity, **figures})
    run_.per_seed[(arm.label, seed)] = info
    run_.states[(arm.label, seed)] = record.get("state")
    how = (" (finished before)" if record.get("finished_before") else
           f" (carried: {carried.path(carry, arm.slug, seed)})" if record.get("carried") else "")
    run_.log(f"  {arm.label} seed {seed}: train error {info['train_error']:.4f}, test accuracy "
             f"{info['eval_accuracy']:.4f}{how}")


def _train_or_carry(run_: AblationRun, extras, ai: int, arm, seed: int, c, train_data, eval_data,
                    carry: Optional[str], identity: dict):
    """(setup, final record, training log, carried record or None) of one run: fine-tuned, or taken from its
    carried record where its workdir is gone, or trained by the engine (which resumes a workdir or finds it
    finished)."""
    wd = run_workdir(run_.workdirs, arm, seed)
    if run_.config.ablation.finetune:
        record = run_finetune(c, wd)
        setup = build(c, model=record["model"], train_data=train_data, eval_data=eval_data)
        return setup, record, read_metrics(os.path.join(wd, "metrics.jsonl")), None
    setup = run_.build(c, train_data, eval_data)
    for extra in extras:
        extra.prepare(run_, ai, arm, seed, setup)
    kept = None
    if carry is not None:
        kept, why = carried.load(carry, arm, seed, c, setup.model_fields, identity)
        if why and not os.path.exists(wd):  # with a workdir, the record is only rewritten from it
            run_.log(f"  {arm.label} seed {seed}: {why}")
    if kept is not None and not os.path.exists(wd):
        run_.carried_runs.append({"arm": arm.label, "seed": seed, "written_utc": kept.get("written_utc"),
                                  "environment": kept.get("environment")})
        return setup, {**kept["final"], "carried": True}, kept["train_records"], kept
    # a workdir that exists wins: the engine resumes it or finds it finished
    return setup, run(setup, wd), read_metrics(os.path.join(wd, "metrics.jsonl")), None


def _result(run_: AblationRun, extras) -> dict:
    """Every run done: the table, curves and claims (_collect), then what each extra collects."""
    twin_arms = checked_arms_of(extras, run_)
    metrics = tuple(m for e in extras for m in e.metrics)
    result = _collect(run_.config, run_.arms, run_.seeds, run_.per_seed, run_.setups, twin_arms, metrics)
    result["arms"] = [{"label": a.label, "overrides": dict(a.overrides)} for a in run_.arms]  # as run (tuned)
    result["trained_runs"] = run_.started  # 0: every run had finished before (the files are only written again)
    result["carried_runs"] = run_.carried_runs
    result["train_wall_s"] = sum(i["wall_s"] for i in run_.per_seed.values())  # the extras add their own runs'
    for extra in extras:
        extra.collect(run_, result)
    return result


def _collect(config, arms, seeds, per_seed, setups, twin_arms=None, extra_metrics=()) -> dict:
    """The table (one row per arm), the curves and the claims' verdicts (claims between `twin_arms`, the same
    function by construction, are checks: jaxcnn.ablation.family); `extra_metrics` are the extras' per-seed
    metrics, summed up in the rows beside the engine's; the extras add the rest."""
    result = {"rows": [], "curves": {}, "per_seed": per_seed, "seeds": seeds, "claims": [], "extras": {}}
    for arm in arms:
        infos = [per_seed[(arm.label, s)] for s in seeds]
        setup = setups[(arm.label, seeds[0])]
        summ = summary(setup.model, setup.input_shape)
        row = {"arm": arm.label, "model": setup.config.model.name,
               "field": ";".join(f"{k}={_value(setup.config, k)}" for k in fields_of(config)),
               "params": summ.trainable_params, "macs": summ.total_macs,
               "step_time_ms": 1e3 * float(np.median([i["step_time_s"] for i in infos])),
               "seeds": len(seeds), "steps": infos[0]["num_steps"], "batch_size": infos[0]["batch_size"],
               "eval_examples": infos[0]["eval_examples"]}
        for metric in ROW_METRICS + tuple(extra_metrics):
            if metric in infos[0]:
                values = [i[metric] for i in infos]
                if all(math.isfinite(v) for v in values):
                    row[f"{metric}_mean"], row[f"{metric}_std"] = stats.mean_std(values)
                else:  # censored (a run never reached the target): no mean, the count instead
                    row[f"{metric}_mean"] = row[f"{metric}_std"] = math.nan
                    row[f"{metric}_censored"] = sum(not math.isfinite(v) for v in values)
        row["eval_accuracy_per_seed"] = " ".join(f"{i['eval_accuracy']:.4f}" for i in infos)
        for metric in PER_SEED_METRICS + tuple(extra_metrics):
            if metric in infos[0]:
                row[f"{metric}_per_seed"] = " ".join(f"{i[metric]:.6g}" for i in infos)
        result["rows"].append(row)
        result["curves"][arm.label] = (infos[0]["curve_steps"], np.stack([i["curve"] for i in infos]))
    values = lambda arm, metric: [per_seed[(arm, s)][metric] for s in seeds]  # noqa: E731
    result.update(score_claims(claims_of(config), values, rules_of(config), twin_arms))
    return result


def score_claims(claims, values, rules=(), twin_arms=None) -> dict:
    """The claim rows (jaxcnn.ablation.family.claim_row, unadjusted) of `claims`, with the analyses beside
    them: a generalization_gap claim split into its train and test parts, a steps_to_target claim's ratio A / B
    with its CI, and the rule cells' verdicts. values(arm, metric) gives an arm's per-seed values (seed order
    the same for every arm). Returns {"claims", "gap_parts", "steps_ratios", "rules"}."""
    out = {"claims": [family.claim_row(c, values(c.a, c.metric), values(c.b, c.metric), twin_arms) for c in claims],
           "gap_parts": [], "steps_ratios": []}
    for c in claims:
        if c.metric == "generalization_gap":
            train = {arm: [g + e for g, e in zip(values(arm, "generalization_gap"), values(arm, "eval_accuracy"))]
                     for arm in (c.a, c.b)}
            out["gap_parts"].append(family.gap_parts(c, train, {arm: values(arm, "eval_accuracy")
                                                                for arm in (c.a, c.b)}))
        if c.metric == "steps_to_target":
            out["steps_ratios"].append(family.steps_ratio(c, values(c.a, c.metric), values(c.b, c.metric)))
    out["rules"] = [dict(cell, verdict_unadjusted=cell["verdict"]) for cell in
                    family.rule_verdicts(rules, out["claims"], key="verdict")]
    return out


def _value(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part] if part in node else getattr(node, part, None)
    return node
