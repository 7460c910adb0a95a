"""An ablation's analyses beyond its table and claims, each a small named extra with one protocol, registered
like the engine's tasks (`register_extra`; `EXTRA_TYPES` lists them in the order they act).

    class Extra:
        name           the ablation that uses it says so (see `wanted`)
        needs_params   it needs every run's trained parameters (its runs cannot be carried from records)
        kept_figures   the figures of `measure` a carried record keeps (read back by `measure` from it)
        wanted(config) -> bool
        before(run)                                   before the scored runs
        configure(run, ai, arm, seed, c)              one scored run's config, before its data and model are built
        prepare(run, ai, arm, seed, setup)            its Setup, before it trains
        carried_identity(run) -> dict                 what a carried record must have been measured with
        measure(run, arm, seed, setup, record, kept) -> dict   figures of one finished run (kept: its record)
        checked_arms(run) -> tuple | None             two arms that are one function by construction: claims
                                                      between them cannot fail (checks, outside the family)
        collect(run, result)                          every run done: figures and claims into the result

`run` is the AblationRun of jaxcnn.ablation.runner (config, arms, seeds, workdirs, the data cache, log, and
what the runs leave: setups, states, per_seed, tuning, pretraining). The extras:

* tune        one setting tuned per arm on a seed of its own (ablation.tune; jaxcnn.ablation.tuning)
* pretrain    one pretraining run per seed that the arms with finetune.path "pretrain" start from
* gap         the generalization gap (a claim on generalization_gap): training images scored in eval mode
* train_error_eval  the whole training split's error in eval mode (a claim on train_error_eval), beside the
              running training error
* twin_flip   the second arm starts from the first arm's kernels flipped; the twin report and its claim
* kernels     the first layer's kernels of each arm;  grad_norms  gradient norms at initialisation
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxcnn.ablation import analyses, family
from jaxcnn.ablation.spec import Arm, arm_config, claims_of
from jaxcnn.ablation.tuning import tune_arms
from jaxcnn.data.arrays import ArrayDataset
from jaxcnn.data.sharding import batch_indices
from jaxcnn.train.engine import evaluate, run as run_engine
from jaxcnn.train.records import training_wall_seconds
from jaxcnn.train.setup import build
from jaxcnn.train.workdir import read_metrics


class Extra:
    """The protocol (see the module docstring); every hook does nothing by default."""

    name = ""
    needs_params = False
    kept_figures: tuple = ()

    def wanted(self, config) -> bool:
        return self.name in config.ablation.extras

    def before(self, run) -> None:
        pass

    def configure(self, run, ai: int, arm, seed: int, c) -> None:
        pass

    def prepare(self, run, ai: int, arm, seed: int, setup) -> None:
        pass

    def carried_identity(self, run) -> dict:
        return {}

    def measure(self, run, arm, seed: int, setup, record: dict, kept) -> dict:
        return {}

    def checked_arms(self, run):
        return None

    def collect(self, run, result: dict) -> None:
        pass


class Tune(Extra):
    name = "tune"

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


class Pretrain(Extra):
    name = "pretrain"

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


class Gap(Extra):
    name = "gap"
    kept_figures = ("train_eval_accuracy",)

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
    kept_figures = ("train_error_eval",)

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
        first, second, seeds = run.arms[0].label, run.arms[1].label, run.seeds
        s = run.setups[(first, seeds[0])]
        images = s.preprocess(s.eval_data.images[:500], None, False)
        twin = {str(seed): analyses.twin_report(run.states[(first, seed)], run.states[(second, seed)], images)
                for seed in seeds}
        result["extras"]["twin"] = twin
        result["claims"].append({**analyses.twin_claim(twin, first, second), "kind": family.CHECK, "p_value": None,
                                 "p_holm": None, "check_reason": "holds by construction (the same function "
                                                                 "up to the flip)"})


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


class GradNorms(Extra):
    name = "grad_norms"

    def collect(self, run, result: dict) -> None:
        result["extras"]["grad_norms"] = {arm.label: _grad_norms(run.setups[(arm.label, run.seeds[0])])
                                          for arm in run.arms}


def _grad_norms(setup):
    c = setup.config
    idx = batch_indices(c.seed, 0, len(setup.train_data), c.batch_size)
    images = setup.preprocess(setup.train_data.images[idx], None, False)
    return analyses.grad_norms_at_init(setup.model, setup.input_shape, images, setup.train_data.labels[idx],
                                       jax.random.key(c.seed))


# The extras in the order they act (pretraining before tuning, as the runs were always made).
EXTRA_TYPES: dict[str, type] = {}


def register_extra(cls: type) -> type:
    """Add an Extra subclass (by its name); ablation.extras may then name it, or its `wanted` picks it."""
    if not cls.name or cls.name in EXTRA_TYPES:
        raise ValueError(f"extra {cls.name!r} has no name or is registered twice")
    EXTRA_TYPES[cls.name] = cls
    return cls


for _cls in (Pretrain, Tune, TwinFlip, Gap, TrainErrorEval, Kernels, GradNorms):
    register_extra(_cls)


def extras_of(config) -> list[Extra]:
    """The extras this ablation uses, fresh, in the order they act."""
    return [cls() for cls in EXTRA_TYPES.values() if cls().wanted(config)]


def checked_arms_of(extras, run):
    """The (first, second) arms that one of `extras` makes the same function by construction (claims between
    them are checks, outside the family), or None. `run` needs only `.arms` (each with a `.label`) and
    `.config`: the live run while training, or a stand-in built from a committed run.json when scoring again."""
    return next((arms for arms in (e.checked_arms(run) for e in extras) if arms), None)
