"""The built-in extras of an ablation (the protocol and the registry: jaxcnn.ablation.protocol, whose names this
module also gives: Extra, EXTRA_TYPES, register_extra, extras_of, checked_arms_of), in the order they act:

* pretrain    one pretraining run per seed that the arms with finetune.path "pretrain" start from
* tune        one setting tuned per arm on a seed of its own (ablation.tune; jaxcnn.ablation.tuning); tuning.csv
* twin_flip   the second arm starts from the first arm's kernels flipped; the twin report and its check
* gap         the generalization gap (a claim on generalization_gap): training images scored in eval mode
* train_error_eval  the whole training split's error in eval mode (a claim on train_error_eval), beside the
              running training error
* kernels     the first layer's kernels of each arm (kernels.png)
* grad_norms  gradient norms at initialisation (grad_norms.png, grad_norms.csv)
* facts       the arithmetic facts of ablation.facts (run.json's extras.facts)
"""

from __future__ import annotations

import csv
import os

import jax
import numpy as np

from jaxcnn.ablation import analyses, family
from jaxcnn.ablation.plots import plot_grad_norms, plot_kernels
from jaxcnn.ablation.protocol import (  # noqa: F401 (the protocol's names, given here as well)
    EXTRA_TYPES,
    Extra,
    checked_arms_of,
    extras_of,
    register_extra,
)
from jaxcnn.ablation.spec import Arm, arm_config, claims_of
from jaxcnn.ablation.tuning import tune_arms, value_slug
from jaxcnn.data.arrays import ArrayDataset
from jaxcnn.data.sharding import batch_indices
from jaxcnn.train.engine import evaluate, run as run_engine
from jaxcnn.train.records import training_wall_seconds
from jaxcnn.train.setup import build
from jaxcnn.train.workdir import read_metrics


class Tune(Extra):
    name = "tune"
    picked_by = "ablation.tune"

    def wanted(self, config) -> bool:
        return bool(config.ablation.tune)

    def before(self, run) -> None:
        ab = run.config.ablation

        def train_one(arm, seed, wd, num_steps):
            c = arm_config(run.config, arm, seed)
            with c.unlocked():
                c.num_steps = num_steps
            train_data, eval_data = run.data_for(c)
            run_engine(build(c, train_data=train_data, eval_data=eval_data), wd)

        run.tuning = tune_arms(run.config, run.arms, run.workdirs, train_one,
                               lambda records, c: run.summary_of(records, c.batch_size), run.log)
        run.arms = [Arm(a.label, {**a.overrides, ab.tune["key"]: run.tuning[a.label]["chosen"]}) for a in run.arms]

    def collect(self, run, result: dict) -> None:
        result["tuning"] = run.tuning  # run.json keeps it, and table.md shows it (also when scored again)
        result["train_wall_s"] += sum(t["wall_s"] for arm in run.tuning.values() for t in arm["trials"])

    def report(self, result: dict, out) -> None:
        with open(out("tuning.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "key", "value", "metric", "metric_value", "train_loss", "diverged", "chosen"])
            for label, t in result["tuning"].items():
                for trial in t["trials"]:
                    w.writerow([label, t["key"], value_slug(trial["value"]), t["metric"],
                                "" if trial["diverged"] else f"{trial['metric']:g}",
                                "" if trial["diverged"] else f"{trial['train_loss']:.6g}", trial["diverged"],
                                trial["value"] == t["chosen"]])


class Pretrain(Extra):
    name = "pretrain"
    picked_by = "ablation.pretrain"

    def wanted(self, config) -> bool:
        return bool(config.ablation.pretrain)

    def before(self, run) -> None:
        run.pretraining = {seed: self._pretrain(run, seed) for seed in run.seeds}

    def _pretrain(self, run, seed: int) -> tuple[str, float]:
        """Train (or find finished) the seed's pretraining run: the shared config with ablation.pretrain's
        overrides. Returns its workdir (what arms with finetune.path "pretrain" start from) and its training
        seconds over all its pieces."""
        c = arm_config(run.config, Arm("pretrain", dict(run.config.ablation.pretrain)), seed)
        with c.unlocked():
            c.finetune.source = "none"
        wd = os.path.join(run.workdirs, "pretrain", f"seed{seed}")
        train_data, eval_data = run.data_for(c)
        record = run_engine(build(c, train_data=train_data, eval_data=eval_data), wd)
        run.log(f"  pretrain seed {seed}: test accuracy {record['eval_accuracy']:.4f} on its own task"
                f"{' (finished before)' if record.get('finished_before') else ''}")
        return wd, training_wall_seconds(read_metrics(os.path.join(wd, "metrics.jsonl")))

    def configure(self, run, ai: int, arm, seed: int, c) -> None:
        if c.finetune.path == "pretrain":
            with c.unlocked():
                c.finetune.path = run.pretraining[seed][0]

    def collect(self, run, result: dict) -> None:
        result["pretrain_wall_s"] = sum(wall for _, wall in run.pretraining.values())
        result["train_wall_s"] += result["pretrain_wall_s"]


class Gap(Extra):
    name = "gap"
    picked_by = "a claim on generalization_gap"
    kept_figures = ("train_eval_accuracy",)
    metrics = ("generalization_gap",)

    def wanted(self, config) -> bool:
        return "generalization_gap" in {cl.metric for cl in claims_of(config)}

    def carried_identity(self, run) -> dict:
        return {"gap_examples": int(run.config.ablation.gap_examples)}

    def measure(self, run, arm, seed: int, setup, record: dict, kept) -> dict:
        accuracy = (kept["extra"]["train_eval_accuracy"] if record.get("carried") else
                    _train_split_accuracy(setup, record["state"], run.config.ablation.gap_examples))
        return {"train_eval_accuracy": accuracy, "generalization_gap": accuracy - record["eval_accuracy"]}


class TrainErrorEval(Extra):
    """The whole training split's error in eval mode (no dropout, running BatchNorm statistics, no
    augmentation), beside the running error the training log averages over a window."""

    name = "train_error_eval"
    picked_by = "a claim on train_error_eval"
    kept_figures = ("train_error_eval",)
    metrics = ("train_error_eval",)

    def wanted(self, config) -> bool:
        return "train_error_eval" in {cl.metric for cl in claims_of(config)}

    def carried_identity(self, run) -> dict:
        return {"train_error_eval_examples": 0}  # a record without the eval-mode training error is trained again

    def measure(self, run, arm, seed: int, setup, record: dict, kept) -> dict:
        return {"train_error_eval": (kept["extra"]["train_error_eval"] if record.get("carried") else
                                     1.0 - _train_split_accuracy(setup, record["state"], 0))}


def _train_split_accuracy(setup, state, examples: int) -> float:
    """Accuracy on the first `examples` training images (0: all of them), in eval mode (no dropout, running
    BatchNorm statistics, no augmentation)."""
    n = min(examples, len(setup.train_data)) if examples else len(setup.train_data)
    subset = ArrayDataset(setup.train_data.images[:n], setup.train_data.labels[:n], setup.train_data.num_classes)
    batch = setup.config.eval_batch_size
    return evaluate(setup.strategy, setup.strategy.put_state(state), subset, batch, setup.task)["eval_accuracy"]


class TwinFlip(Extra):
    name = "twin_flip"
    needs_params = True

    def prepare(self, run, ai: int, arm, seed: int, setup) -> None:
        if ai == 1 and not run.config.ablation.finetune:  # the second arm starts as the first one's flipped twin
            setup.init_state = _twin_init(run.setups[(run.arms[0].label, seed)], setup.init_state)

    def checked_arms(self, run):
        return run.arms[0].label, run.arms[1].label

    def collect(self, run, result: dict) -> None:
        (first, second), seeds = self.checked_arms(run), run.seeds
        s = run.setups[(first, seeds[0])]
        images = s.preprocess(s.eval_data.images[:500], None, False)
        twin = {str(seed): analyses.twin_report(run.states[(first, seed)], run.states[(second, seed)], images)
                for seed in seeds}
        result["extras"]["twin"] = twin
        result["claims"].append(_twin_check(twin, first, second))

    def recorded(self, result: dict) -> dict:
        return {"twin": result["extras"]["twin"]} if "twin" in result["extras"] else {}

    def rescore(self, run, stored: dict) -> list:
        twin = (stored.get("extras") or {}).get("twin")
        return [_twin_check(twin, *self.checked_arms(run))] if twin else []


def _twin_check(twin: dict, first: str, second: str) -> dict:
    """The twin check's row beside the claims, from the per-seed twin reports."""
    return {**analyses.twin_claim(twin, first, second), "kind": family.CHECK, "p_value": None, "p_holm": None,
            "check_reason": "holds by construction (the same function up to the flip)"}


def _twin_init(first_setup, own_init):
    """The second arm's initial state: its own, with the first arm's (same seed) parameters, every kernel
    flipped, and a fresh optimizer state for them."""
    def init():
        base, own = first_setup.init_state(), own_init()
        params = jax.tree_util.tree_map(np.asarray, analyses.flip_kernels(base.params))
        return own.replace(params=params, batch_stats=base.batch_stats,
                           opt_state=jax.tree_util.tree_map(np.asarray, own.tx.init(params)))
    return init


class Kernels(Extra):
    name = "kernels"
    needs_params = True

    def collect(self, run, result: dict) -> None:
        s0 = run.seeds[0]
        result["extras"]["kernels"] = {
            arm.label: analyses.first_kernel(run.states[(arm.label, s0)].params, run.setups[(arm.label, s0)].model,
                                             run.setups[(arm.label, s0)].input_shape) for arm in run.arms}

    def report(self, result: dict, out) -> None:
        if result["extras"].get("kernels"):
            plot_kernels(result["extras"]["kernels"], out("kernels.png"))


class GradNorms(Extra):
    name = "grad_norms"

    def collect(self, run, result: dict) -> None:
        result["extras"]["grad_norms"] = {arm.label: _grad_norms(run.setups[(arm.label, run.seeds[0])])
                                          for arm in run.arms}

    def report(self, result: dict, out) -> None:
        norms = result["extras"].get("grad_norms")
        if not norms:
            return
        plot_grad_norms(norms, out("grad_norms.png"))
        with open(out("grad_norms.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "layer_index", "layer", "grad_norm"])
            for label, rows in norms.items():
                for i, (name, g) in enumerate(rows, 1):
                    w.writerow([label, i, name, f"{g:.6g}"])


def _grad_norms(setup):
    c = setup.config
    idx = batch_indices(c.seed, 0, len(setup.train_data), c.batch_size)
    images = setup.preprocess(setup.train_data.images[idx], None, False)
    return analyses.grad_norms_at_init(setup.model, setup.input_shape, images, setup.train_data.labels[idx],
                                       jax.random.key(c.seed))


class Facts(Extra):
    """The arithmetic facts ablation.facts names (jaxcnn.ablation.analyses.FACTS); run.json always holds the
    section (empty where none are named)."""

    name = "facts"
    picked_by = "ablation.facts"

    def wanted(self, config) -> bool:
        return True

    def collect(self, run, result: dict) -> None:
        result["extras"]["facts"] = {f: analyses.FACTS[f]() for f in run.config.ablation.facts}

    def recorded(self, result: dict) -> dict:
        return {"facts": result["extras"]["facts"]} if "facts" in result["extras"] else {}


for _cls in (Pretrain, Tune, TwinFlip, Gap, TrainErrorEval, Kernels, GradNorms, Facts):
    register_extra(_cls)
