"""Training: TrainState, the pure train/eval steps, the parallel strategies
("none" | "pmap" | "mesh"), checkpoints, and the loop (the only I/O)."""

from jaxcnn.train.config import base_config, validate_config
from jaxcnn.train.loop import TrainingDiverged, build_model, train_and_evaluate
from jaxcnn.train.optim import make_optimizer, make_schedule
from jaxcnn.train.parallel import make_strategy
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.step import cross_entropy, eval_step, train_step

__all__ = [
    "TrainState",
    "TrainingDiverged",
    "base_config",
    "build_model",
    "create_train_state",
    "cross_entropy",
    "eval_step",
    "make_optimizer",
    "make_schedule",
    "make_strategy",
    "train_and_evaluate",
    "train_step",
    "validate_config",
]
