"""The ablations' config section, `config.ablation`: its keys with their defaults and its validation.

jaxcnn.train.config composes it into base_config() (the package root registers it); a plain training run does
not read it (so a rerun may change it: jaxcnn.train.workdir). The section as a whole (arms against arms) is checked by
jaxcnn.ablation.spec.validate_ablation.
"""

from __future__ import annotations

import re

import ml_collections

# Sub-sections that hold overrides of any config key: their keys are checked when they are applied.
OPEN = ("quick", "pretrain", "tune")
READ_BY_TRAINING = False
RUN_NAME_KEY = "name"  # an ablation's runs are named by it (jaxcnn.train.config.run_name)


def section() -> ml_collections.ConfigDict:
    """config.ablation (scripts/ablate.py, jaxcnn.ablation): arms x seeds, each a run of the engine."""
    return ml_collections.ConfigDict({
        "name": "", "title": "", "claim": "",
        "field": "",  # the config keys the arms differ in ("model.skip"; several joined by ",")
        "arms": [],  # [{"label": str, "overrides": {dotted config key: value}}]
        "seeds": (0, 1, 2),
        "claims": (),  # the verdicts to draw: "METRIC: ARM_A > ARM_B" (eval_accuracy, eval_error, train_error,
        #                train_loss), each from the 95% CI of the difference paired by seed
        "quick": {},  # overrides for --quick (a smoke run that never writes over a committed result)
        "extras": (),  # "grad_norms", "twin_flip", "kernels"
        "facts": (),  # arithmetic facts reported with the result ("inception4a_5x5", "vgg_stack")
        "panels": [],  # [(title, [arm labels])]: the training-error plot as side-by-side panels
        "target_train_error": 0.25,  # steps_to_target: the first logged step at or below this training error
        "gap_examples": 10000,  # generalization_gap: training images scored in eval mode after training
        "pretrain": {},  # overrides of one pretraining run per seed; arms with finetune.path "pretrain" use it
        "finetune": False,  # every arm runs as fine-tuning (head / full / scratch phases: jaxcnn.finetune)
        # one setting tuned per arm before the seeds run: {"key", "values", "seed", "metric", "num_steps"}
        # (jaxcnn.ablation.tuning); {} = none
        "tune": {},
        # a rule's cells (transfer): [(title, [recommended arm labels], [the other arm labels])]: the cell is
        # reproduced where a recommended arm is better than every other arm, each an "eval_accuracy: R > X" claim
        "rules": [],
        # claims of an earlier committed result that this design replaces in the family ("RESULT: CLAIM", e.g.
        # "skip: train_error: resnet56 residual < resnet20 residual"): a new, larger run at fresh seeds, fixed before
        # its runs. Once this result is committed, those claims leave Holm's family and are listed as superseded
        # (jaxcnn.ablation.family.mark_superseded); until then nothing changes.
        "supersedes": (),
    })


def validate(config, check_number, check_items) -> None:
    """config.ablation's values that a single run can check (the base validation has checked every type)."""
    check_items("ablation.seeds", config.ablation.seeds, int, low=0, example=(0, 1, 2))
    for item in config.ablation.get("supersedes", ()):
        split_superseded(item)


def split_superseded(item) -> tuple[str, str]:
    """("RESULT", "CLAIM") of one ablation.supersedes entry "RESULT: CLAIM"; a clear error otherwise."""
    example = "skip: train_error: resnet56 residual < resnet20 residual"
    name, sep, claim = str(item).partition(": ")
    if not isinstance(item, str) or not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or ": " not in claim:
        raise ValueError(f"ablation.supersedes entries are \"RESULT: CLAIM\" (a committed result's name, then one "
                         f"of its claims as written), got {item!r}; e.g. {example!r}.")
    return name, claim.strip()
