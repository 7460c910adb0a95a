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
from typing import Callable, Optional

import jax
import numpy as np

from jaxcnn.ablation import analyses, carried, family, stats
from jaxcnn.ablation.spec import Arm, arm_config, arms_of, claims_of, fields_of, rules_of, validate_ablation
from jaxcnn.ablation.tuning import tune_arms
from jaxcnn.finetune import run_finetune
from jaxcnn.models import summary
from jaxcnn.train.engine import run
from jaxcnn.train.setup import build, load_data
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


def _twin_init(first_setup, own_init):
    """The second arm's initial state: its own, with the first arm's (same seed) parameters, every kernel
    flipped, and a fresh optimizer state for them."""
    def init():
        base, own = first_setup.init_state(), own_init()
        params = jax.tree_util.tree_map(np.asarray, analyses.flip_kernels(base.params))
        return own.replace(params=params, batch_stats=base.batch_stats,
                           opt_state=jax.tree_util.tree_map(np.asarray, own.tx.init(params)))
    return init


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
            "wall_s": training_wall_seconds(train)}


def training_wall_seconds(records: list[dict]) -> float:
    """Seconds of training over every piece of a run: each start of the engine counts wall_time_sec from 0, so
    the total is the sum of each piece's last value (the time before a piece's first log line included)."""
    total, last = 0.0, 0.0
    for r in records:
        wall = float(r.get("wall_time_sec", 0.0))
        if wall < last:  # a resumed piece starts its clock again
            total += last
        last = wall
    return total + last


def _train_split_accuracy(setup, state, examples: int) -> float:
    """Accuracy on the first `examples` training images (0: all of them), in eval mode (no dropout, running
    BatchNorm statistics, no augmentation)."""
    from jaxcnn.data.datasets import ArrayDataset
    from jaxcnn.train.engine import evaluate

    n = min(examples, len(setup.train_data)) if examples else len(setup.train_data)
    subset = ArrayDataset(setup.train_data.images[:n], setup.train_data.labels[:n], setup.train_data.num_classes)
    batch = setup.config.eval_batch_size
    return evaluate(setup.strategy, setup.strategy.put_state(state), subset, batch, setup.task)["eval_accuracy"]


def run_ablation(config, *, workdirs: str, log: Callable[[str], None] = print,
                 stop_after_runs: Optional[int] = None, carry: Optional[str] = None) -> dict:
    """Train every arm for every seed (see the module docstring). `workdirs` holds one workdir per run
    (ARM/seedN); `carry`, if given, the records of finished runs (read and written). Returns rows (one per
    arm), per-seed values, curves, claims with their verdicts and the extras, the tuning runs (ablation.tune:
    jaxcnn.ablation.tuning) and the runs taken from records ("carried_runs"). stop_after_runs: return after
    starting this many runs that were not finished (for tests)."""
    validate_ablation(config)
    ab = config.ablation
    arms, seeds = arms_of(config), [int(s) for s in ab.seeds]
    check_writable(workdirs)
    if carry is not None:
        why = carried.unsupported(config)
        if why:
            log(f"  finished runs are not carried between machines for {ab.name}: {why}")
            carry = None
        else:
            check_writable(carry)
    carried_runs = []
    data_for = _data_cache()
    extras = set(ab.extras)
    per_seed, states, setups, started = {}, {}, {}, 0
    claims = claims_of(config)
    needs_gap = "generalization_gap" in {cl.metric for cl in claims}
    needs_eval_train = "train_error_eval" in {cl.metric for cl in claims}
    gap = {"gap_examples": int(ab.gap_examples)} if needs_gap else {}
    if needs_eval_train:  # a record without the eval-mode training error is trained again
        gap["train_error_eval_examples"] = 0
    pretraining = {seed: _pretrain(config, seed, workdirs, data_for, log) for seed in seeds} if ab.pretrain else {}
    tuning = {}
    if ab.tune:
        def train_one(arm, seed, wd, num_steps):
            c = arm_config(config, arm, seed)
            with c.unlocked():
                c.num_steps = num_steps
            train_data, eval_data = data_for(c)
            run(build(c, train_data=train_data, eval_data=eval_data), wd)

        tuning = tune_arms(config, arms, workdirs, train_one,
                           lambda records, c: _summary_of(records, c.batch_size, ab.target_train_error), log)
        arms = [Arm(a.label, {**a.overrides, ab.tune["key"]: tuning[a.label]["chosen"]}) for a in arms]
    for ai, arm in enumerate(arms):
        for seed in seeds:
            c = arm_config(config, arm, seed)
            if c.finetune.path == "pretrain":
                with c.unlocked():
                    c.finetune.path = pretraining[seed][0]
            train_data, eval_data = data_for(c)
            wd = os.path.join(workdirs, arm.slug, f"seed{seed}")
            kept = None
            if ab.finetune:
                record = run_finetune(c, wd)
                setup = build(c, model=record["model"], train_data=train_data, eval_data=eval_data)
                train_records = read_metrics(os.path.join(wd, "metrics.jsonl"))
            else:
                setup = build(c, train_data=train_data, eval_data=eval_data)
                if "twin_flip" in extras and ai == 1:
                    setup.init_state = _twin_init(setups[(arms[0].label, seed)], setup.init_state)
                if carry is not None:
                    kept, why = carried.load(carry, arm, seed, c, setup.model_fields, gap)
                    if why and not os.path.exists(wd):  # with a workdir, the record is only rewritten from it
                        log(f"  {arm.label} seed {seed}: {why}")
                if kept is not None and not os.path.exists(wd):
                    record = {**kept["final"], "carried": True}
                    train_records = kept["train_records"]
                    carried_runs.append({"arm": arm.label, "seed": seed, "written_utc": kept.get("written_utc"),
                                         "environment": kept.get("environment")})
                else:  # a workdir that exists wins: the engine resumes it or finds it finished
                    record = run(setup, wd)
                    train_records = read_metrics(os.path.join(wd, "metrics.jsonl"))
            setups[(arm.label, seed)] = setup
            if not record.get("finished_before") and not record.get("carried"):
                started += 1
            info = _summary_of(train_records, c.batch_size, ab.target_train_error)
            info.update(eval_accuracy=record["eval_accuracy"], eval_error=1.0 - record["eval_accuracy"],
                        eval_examples=len(eval_data), num_steps=record["step"], batch_size=c.batch_size)
            if needs_gap:
                info["train_eval_accuracy"] = (kept["extra"]["train_eval_accuracy"] if record.get("carried") else
                                               _train_split_accuracy(setup, record["state"], ab.gap_examples))
                info["generalization_gap"] = info["train_eval_accuracy"] - info["eval_accuracy"]
            if needs_eval_train:  # the whole training split in eval mode, beside the running error
                info["train_error_eval"] = (kept["extra"]["train_error_eval"] if record.get("carried") else
                                            1.0 - _train_split_accuracy(setup, record["state"], 0))
            if carry is not None and kept is None:
                measured = {k: info[k] for k in ("train_eval_accuracy", "train_error_eval") if k in info}
                carried.write(carry, arm, seed, c, setup.model_fields, [r for r in train_records if "train_loss" in r],
                              {"step": record["step"], "eval_accuracy": record["eval_accuracy"]}, {**gap, **measured})
            per_seed[(arm.label, seed)] = info
            states[(arm.label, seed)] = record.get("state")
            how = (" (finished before)" if record.get("finished_before") else
                   f" (carried: {carried.path(carry, arm.slug, seed)})" if record.get("carried") else "")
            log(f"  {arm.label} seed {seed}: train error {info['train_error']:.4f}, test accuracy "
                f"{info['eval_accuracy']:.4f}{how}")
            if stop_after_runs is not None and started >= stop_after_runs:
                return {"stopped": True}
    result = _collect(config, arms, seeds, per_seed, states, setups, extras)
    result["tuning"] = tuning
    result["trained_runs"] = started  # 0: every run had finished before (the files are only written again)
    result["carried_runs"] = carried_runs
    result["pretrain_wall_s"] = sum(wall for _, wall in pretraining.values())
    result["train_wall_s"] = sum(i["wall_s"] for i in per_seed.values()) + sum(
        t["wall_s"] for arm in tuning.values() for t in arm["trials"]) + result["pretrain_wall_s"]
    return result


def _pretrain(config, seed: int, workdirs: str, data_for, log) -> tuple[str, float]:
    """Train (or find finished) the seed's pretraining run: the shared config with ablation.pretrain's
    overrides. Returns its workdir (what arms with finetune.path "pretrain" start from) and its training
    seconds over all its pieces."""
    c = arm_config(config, Arm("pretrain", dict(config.ablation.pretrain)), seed)
    with c.unlocked():
        c.finetune.source = "none"
    wd = os.path.join(workdirs, "pretrain", f"seed{seed}")
    train_data, eval_data = data_for(c)
    record = run(build(c, train_data=train_data, eval_data=eval_data), wd)
    log(f"  pretrain seed {seed}: test accuracy {record['eval_accuracy']:.4f} on its own task"
        f"{' (finished before)' if record.get('finished_before') else ''}")
    return wd, training_wall_seconds(read_metrics(os.path.join(wd, "metrics.jsonl")))


def _collect(config, arms, seeds, per_seed, states, setups, extras) -> dict:
    ab = config.ablation
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
        for metric in ("train_error", "train_error_eval", "train_loss", "eval_accuracy", "eval_error",
                       "steps_to_target", "generalization_gap"):
            if metric in infos[0]:
                values = [i[metric] for i in infos]
                if all(math.isfinite(v) for v in values):
                    row[f"{metric}_mean"], row[f"{metric}_std"] = stats.mean_std(values)
                else:  # censored (a run never reached the target): no mean, the count instead
                    row[f"{metric}_mean"] = row[f"{metric}_std"] = math.nan
                    row[f"{metric}_censored"] = sum(not math.isfinite(v) for v in values)
        row["eval_accuracy_per_seed"] = " ".join(f"{i['eval_accuracy']:.4f}" for i in infos)
        for metric in ("train_error", "train_error_eval", "steps_to_target", "generalization_gap"):
            if metric in infos[0]:
                row[f"{metric}_per_seed"] = " ".join(f"{i[metric]:.6g}" for i in infos)
        result["rows"].append(row)
        result["curves"][arm.label] = (infos[0]["curve_steps"], np.stack([i["curve"] for i in infos]))
    first, second = arms[0].label, arms[1].label
    values = lambda arm, metric: [per_seed[(arm, s)][metric] for s in seeds]  # noqa: E731
    result.update(score_claims(claims_of(config), values, rules_of(config),
                               twin_arms=(first, second) if "twin_flip" in extras else None))
    if "twin_flip" in extras:
        s = setups[(first, seeds[0])]
        images = s.preprocess(s.eval_data.images[:500], None, False)
        twin = {str(seed): analyses.twin_report(states[(first, seed)], states[(second, seed)], images)
                for seed in seeds}
        result["extras"]["twin"] = twin
        result["claims"].append({**analyses.twin_claim(twin, first, second), "kind": family.CHECK, "p_value": None,
                                 "p_holm": None, "check_reason": "holds by construction (the same function "
                                                                 "up to the flip)"})
    if "kernels" in extras:
        result["extras"]["kernels"] = {
            arm.label: analyses.first_kernel(states[(arm.label, seeds[0])].params, setups[(arm.label, seeds[0])].model,
                                             setups[(arm.label, seeds[0])].input_shape) for arm in arms}
    if "grad_norms" in extras:
        result["extras"]["grad_norms"] = {arm.label: _grad_norms(setups[(arm.label, seeds[0])]) for arm in arms}
    result["extras"]["facts"] = {f: analyses.FACTS[f]() for f in ab.facts}
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


def _grad_norms(setup):
    from jaxcnn.data.sharding import batch_indices

    c = setup.config
    idx = batch_indices(c.seed, 0, len(setup.train_data), c.batch_size)
    images = setup.preprocess(setup.train_data.images[idx], None, False)
    return analyses.grad_norms_at_init(setup.model, setup.input_shape, images, setup.train_data.labels[idx],
                                       jax.random.key(c.seed))


def _value(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part] if part in node else getattr(node, part, None)
    return node
