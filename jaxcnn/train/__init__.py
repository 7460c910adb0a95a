"""Training: one engine for everything that trains.

    final = jaxcnn.train.train_and_evaluate(config, workdir)     # build(config), then run(setup, workdir)

* config.py   the one schema (`base_config()` lists every key) and its validation
* setup.py    build(config) -> Setup: model, data, task, optimizer, parallel strategy, initial state
* engine.py   run(setup, workdir): the loop, evaluation, checkpoints, metrics, NaN policy, signals
* step.py     the pure train_step / eval_step;  tasks.py  what is learned and how it is scored
* parallel.py "none" | "pmap" | "mesh";  state.py TrainState;  optim.py optimizers and schedules
* workdir.py  config.json, the lock, metrics.jsonl; workdir_config and restore of a finished run
* checkpoint.py orbax with checksums;  records.py logs;  errors.py the failures a run reports in one line
* inference.py  a finished run: load_run, evaluate_workdir, predict_files, the confusion matrix
* cli.py      what every script shares: --config FILE, --config.KEY=VALUE, one-line errors
"""

from jaxcnn.train.config import base_config, register_section, validate_config
from jaxcnn.train.engine import TrainingDiverged, TrainingInterrupted, evaluate, run, train_and_evaluate
from jaxcnn.train.inference import evaluate_workdir, load_run
from jaxcnn.train.optim import make_optimizer, make_schedule
from jaxcnn.train.parallel import make_strategy
from jaxcnn.train.setup import Setup, build, build_model, class_subset, load_data, make_preprocess_fn, reusable_parts
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.step import eval_step, train_step
from jaxcnn.train.tasks import (Classification, Segmentation, cross_entropy, get_task, register_task,
                                register_task_provider)
from jaxcnn.train.workdir import Workdir, WorkdirError, read_metrics, restore, workdir_config

__all__ = [
    "Classification", "Segmentation", "Setup", "TrainState", "TrainingDiverged", "TrainingInterrupted", "Workdir",
    "WorkdirError", "base_config", "build", "build_model", "class_subset", "create_train_state", "cross_entropy",
    "eval_step", "evaluate", "evaluate_workdir", "get_task", "load_data", "load_run", "make_optimizer",
    "make_preprocess_fn", "make_schedule", "make_strategy", "read_metrics", "register_section", "register_task",
    "register_task_provider", "restore", "reusable_parts", "run",
    "train_and_evaluate", "train_step", "validate_config", "workdir_config",
]
