"""Finished runs that outlive their workdirs: each arm x seed of an ablation,
once trained, leaves a small record (its config, its training log, its test
score) in the result folder, `OUT/runs/ARM/seedN.json`. A later invocation
on a machine without the workdirs (a fresh machine, a deleted runs/) takes
the finished runs from these records instead of training them again, so an
ablation longer than one sitting finishes over several: rerun the same
command wherever the result folder is.

A record is taken only for a run of exactly the same meaning: every key of
the config that gives a checkpoint its meaning (jaxcnn.train.workdir), plus
those that change the result without changing a checkpoint (num_steps, the
test split and its size, the logging interval that the curves are drawn
from). Anything else trains again, and says why. A workdir that exists always
wins: the engine resumes or finds it finished.

Not carried: the tuning trials (ablation.tune trains them again, and the
scored runs then match their records), fine-tuning ablations (their models
come from the pretraining workdirs), and ablations whose extras need the
trained parameters (Extra.needs_params: twin_flip, kernels).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from typing import Optional

from jaxcnn.ablation.protocol import EXTRA_TYPES, extras_of
from jaxcnn.train.workdir import config_differences, config_record, to_jsonable, write_atomic

FOLDER = "runs"
VERSION = 1
# Keys the engine lets a rerun change that still change what an ablation reports.
RESULT_KEYS = ("num_steps", "eval_split", "eval_examples", "log_every")
_ABSENT = object()


def __getattr__(name: str):
    if name == "NEEDS_PARAMS":
        warnings.warn("jaxcnn.ablation.carried.NEEDS_PARAMS is each extra's own needs_params now "
                      "(jaxcnn.ablation.extras.EXTRA_TYPES); read it there (the old name goes in the next release).",
                      DeprecationWarning, stacklevel=2)
        return tuple(n for n, cls in EXTRA_TYPES.items() if cls.needs_params)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unsupported(config) -> Optional[str]:
    """Why this ablation's finished runs cannot be carried (None: they can)."""
    ab = config.ablation
    if ab.finetune:
        return "a fine-tuning ablation builds its models from the pretraining workdirs"
    needs = sorted(e.name for e in extras_of(config) if e.needs_params)
    if needs:
        return f"its extras {needs} need every run's trained parameters"
    return None


def path(folder: str, arm_slug: str, seed: int) -> str:
    return os.path.join(folder, arm_slug, f"seed{int(seed)}.json")


def _result_view(config) -> dict:
    return {k: to_jsonable(config[k]) for k in RESULT_KEYS}


def write(folder: str, arm, seed: int, config, model_fields: dict, train_records: list[dict], final: dict,
          extra: Optional[dict] = None) -> str:
    """Write (atomically) the record of one finished run; returns its path. A record already there with the same
    content is left as it is, so that rewriting from a finished workdir keeps when and under what load the run
    first finished."""
    from jaxcnn.ablation.report import environment, load_average

    target = path(folder, arm.slug, seed)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    env = environment()
    record = {
        "version": VERSION, "arm": arm.label, "seed": int(seed),
        "config": config_record(config, model_fields), "result_keys": _result_view(config),
        "final": to_jsonable(final), "extra": to_jsonable(extra or {}),
        "train_records": to_jsonable(train_records),
        "environment": {k: env[k] for k in ("platform", "processor", "cpu_count", "backend", "jax")},
        "load_average_1_5_15min": load_average(),
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(record, indent=1) + "\n"
    if _same_content(target, json.loads(text)):
        return target
    write_atomic(target, text)
    return target


def _same_content(target: str, record: dict) -> bool:
    """Whether `target` holds `record` but for when and under what load it was written."""
    try:
        with open(target) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return False
    stamp = ("load_average_1_5_15min", "written_utc")
    return isinstance(old, dict) and ({k: v for k, v in old.items() if k not in stamp}
                                      == {k: v for k, v in record.items() if k not in stamp})


def load(folder: str, arm, seed: int, config, model_fields: dict,
         extra: Optional[dict] = None) -> tuple[Optional[dict], str]:
    """(record, "") when `folder` holds a finished run of this arm and seed with the same meaning as `config`
    (and, of `extra`, the same values in its extra section); else (None, why not) — why is "" when there is no
    record at all."""
    target = path(folder, arm.slug, seed)
    if not os.path.exists(target):
        return None, ""
    try:
        with open(target) as f:
            record = json.load(f)
        if not isinstance(record, dict) or record.get("version") != VERSION:
            raise ValueError("not a record of this version")
        stored, keys = record["config"], record["result_keys"]
        final, train = record["final"], record["train_records"]
        if not (isinstance(final, dict) and "eval_accuracy" in final and isinstance(train, list) and train
                and isinstance(record["extra"], dict)):
            raise ValueError("no final score or training log")
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{target} is damaged (not a finished-run record); it is trained again and rewritten"
    differ = config_differences(stored, config_record(config, model_fields))
    differ += [k for k, v in _result_view(config).items() if keys.get(k) != v]
    differ += [f"ablation.{k}" for k, v in (extra or {}).items() if record["extra"].get(k, _ABSENT) != to_jsonable(v)]
    if differ:
        return None, f"{target} is of another config ({', '.join(differ[:4])} differ); trained again"
    return record, ""
