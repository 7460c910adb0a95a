"""What a run learns and how it is scored: the loss of a batch inside the
jitted step, and the evaluation sums gathered over a split.

    task = get_task("classification", config=config, aux_weight=0.3, num_classes=10)
    outputs = task.apply(apply_fn, variables, images, batch, train=True, ...)   # pure: how the model is called
    loss, metrics = task.loss(outputs, batch, aux_outputs)    # pure, inside jit
    sums = task.eval_sums(outputs, batch)                       # pure, per eval batch (masked)
    totals = task.combine(totals, host_sums)                    # host: over the split's batches
    task.summarize(totals)                                      # host: {"eval_loss", "eval_accuracy", ...}

A task is registered by name (`register_task`); `config.task` picks it.
Classification (softmax cross-entropy, the models' auxiliary losses weighted
by their family's aux weight) and per-pixel segmentation live here. An
application's tasks are found by name: the application registers the package
that holds each (`register_task_provider(task, package)`, kept in `PROVIDERS`;
the package root registers jaxcnn's own), and that package is imported the
first time a config names one of its tasks; it lists them in `TASKS`
({name: factory}) and, where a run is scored its own way, `WORKDIR_SCORERS`
({name: scorer}, see jaxcnn.train.inference.evaluate_workdir). Nothing is
imported for a side effect, and this module names no application.
"""

from __future__ import annotations

import importlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn._applications import TASK_PROVIDERS as PROVIDERS
from jaxcnn._applications import register_task_provider  # noqa: F401 - public here too
from jaxcnn._validation import check_choice


def cross_entropy(logits, labels, num_classes: int, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy in float32, with optional label smoothing."""
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


class Classification:
    """Softmax cross-entropy on `batch['label']` (int, (N,)); accuracy; aux losses at `aux_weight` each. The
    eval sums carry the confusion matrix too, so one pass over a split gives accuracy and per-class figures."""

    name = "classification"
    # eval_sums are sums over examples: summed over devices under pmap (False: per-example outputs, gathered)
    psum_eval = True
    # Its labels belong to whole images: flips, crops, TrivialAugment and mixup/CutMix keep them meaningful
    # (config.augment, mixup_alpha, cutmix_alpha)
    image_labels = True

    def __init__(self, *, label_smoothing: float = 0.0, aux_weight: float = 0.0):
        self.label_smoothing, self.aux_weight = float(label_smoothing), float(aux_weight)

    def apply(self, apply_fn, variables, images, batch, *, train: bool, key=None, **kwargs):
        """The model's outputs on preprocessed `images` (tasks whose models take more than images, such as
        regions of interest, build those from `batch` and `key` here). kwargs: rngs, mutable."""
        return apply_fn(variables, images, train=train, **kwargs)

    def combine(self, totals, result):
        """Fold one eval batch's host result into the running totals (None at first): sums add up."""
        if totals is None:
            return result
        return jax.tree_util.tree_map(lambda a, b: a + b, totals, result)

    def loss(self, logits, batch, aux=()):
        """With batch["mix_lambda"] (a batch mixed with its reverse: jaxcnn.data.augment.mix_batch) the loss
        and accuracy are lam * those of the labels + (1 - lam) * those of the reversed labels."""
        labels = batch["label"]
        n = logits.shape[-1]

        def scored(y):
            loss = cross_entropy(logits, y, n, self.label_smoothing)
            for a in aux:
                loss = loss + self.aux_weight * cross_entropy(a, y, n, self.label_smoothing)
            return loss, jnp.mean(jnp.argmax(logits, -1) == y)

        loss, accuracy = scored(labels)
        if "mix_lambda" in batch:
            lam = batch["mix_lambda"]
            loss_b, accuracy_b = scored(labels[::-1])
            loss, accuracy = lam * loss + (1.0 - lam) * loss_b, lam * accuracy + (1.0 - lam) * accuracy_b
        return loss, {"accuracy": accuracy}

    def eval_sums(self, logits, batch):
        labels, mask = batch["label"], batch["mask"]
        logits = logits.astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        pred = jnp.argmax(logits, -1)
        k = logits.shape[-1]
        # row = true class, column = predicted; int32 counts stay exact under the psum over devices
        confusion = jnp.zeros((k * k,), jnp.int32).at[labels * k + pred].add((mask > 0).astype(jnp.int32))
        return {"loss_sum": jnp.sum(losses * mask), "correct": jnp.sum((pred == labels) * mask),
                "count": jnp.sum(mask), "confusion": confusion.reshape(k, k)}

    def summarize(self, sums) -> dict:
        count = float(sums["count"])
        return {"eval_loss": float(sums["loss_sum"]) / count, "eval_accuracy": float(sums["correct"]) / count}

    def __hash__(self):
        return hash((self.name, self.label_smoothing, self.aux_weight))

    def __eq__(self, other):
        return type(other) is type(self) and hash(self) == hash(other)


class Segmentation(Classification):
    """Per-pixel softmax cross-entropy on `batch['label']` ((N, H, W) class ids; `ignore_index` pixels add no
    loss); pixel accuracy and the confusion matrix, whence mean IoU."""

    name = "segmentation"
    image_labels = False  # per-pixel labels: an augmentation would have to move them too

    def __init__(self, *, num_classes: int, label_smoothing: float = 0.0, aux_weight: float = 0.0,
                 ignore_index: int = 255):
        super().__init__(label_smoothing=label_smoothing, aux_weight=aux_weight)
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)

    def _pixels(self, logits, labels, mask):
        valid = (labels != self.ignore_index).astype(jnp.float32) * mask.reshape((-1,) + (1,) * (labels.ndim - 1))
        return valid, jnp.where(labels == self.ignore_index, 0, labels)

    def loss(self, logits, batch, aux=()):
        valid, labels = self._pixels(logits, batch["label"], jnp.ones(batch["label"].shape[:1]))
        targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
        if self.label_smoothing:
            targets = optax.smooth_labels(targets, self.label_smoothing)
        per_pixel = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
        loss = jnp.sum(per_pixel * valid) / jnp.maximum(jnp.sum(valid), 1.0)
        correct = jnp.sum((jnp.argmax(logits, -1) == labels) * valid) / jnp.maximum(jnp.sum(valid), 1.0)
        return loss, {"accuracy": correct}

    def eval_sums(self, logits, batch):
        valid, labels = self._pixels(logits, batch["label"], batch["mask"])
        pred = jnp.argmax(logits, -1)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
        k = self.num_classes
        conf = jnp.zeros((k * k,), jnp.float32).at[(labels * k + pred).ravel()].add(valid.ravel())
        return {"loss_sum": jnp.sum(losses * valid), "count": jnp.sum(valid), "confusion": conf.reshape(k, k)}

    def summarize(self, sums) -> dict:
        conf = np.asarray(sums["confusion"], np.float64)
        inter = np.diag(conf)
        union = conf.sum(0) + conf.sum(1) - inter
        present = union > 0
        count = float(sums["count"])
        iou = np.where(present, inter / np.where(present, union, 1.0), np.nan)
        return {"eval_loss": float(sums["loss_sum"]) / count, "eval_accuracy": float(inter.sum()) / count,
                "eval_mean_iou": float(np.nanmean(iou)) if present.any() else 0.0,
                "eval_iou_per_class": [None if np.isnan(v) else float(v) for v in iou]}

    def __hash__(self):
        return hash((self.name, self.label_smoothing, self.aux_weight, self.num_classes, self.ignore_index))


_TASKS: dict[str, Callable] = {}
_SCORERS: dict[str, Callable] = {}


def register_task(name: str, factory: Callable, *, scorer: Optional[Callable] = None) -> None:
    """Make `config.task = name` build `factory(config=..., aux_weight=..., num_classes=...)`; `scorer`, if
    given, is how jaxcnn.train.inference.evaluate_workdir scores a workdir of this task."""
    if name in _TASKS:
        raise ValueError(f"task {name!r} is registered twice")
    _TASKS[name] = factory
    if scorer is not None:
        _SCORERS[name] = scorer


def _load(name: str) -> None:
    """Import the package that provides task `name` (if an application does) and take its tasks."""
    if name in _TASKS or name not in PROVIDERS:
        return
    package = importlib.import_module(PROVIDERS[name])
    scorers = getattr(package, "WORKDIR_SCORERS", {})
    for task, factory in package.TASKS.items():
        if task not in _TASKS:
            register_task(task, factory, scorer=scorers.get(task))


def get_task(name: str, *, config, aux_weight: float, num_classes: int):
    check_choice("config.task", name, task_names())
    _load(name)
    return _TASKS[name](config=config, aux_weight=aux_weight, num_classes=num_classes)


def workdir_scorer(name: str) -> Optional[Callable]:
    """The application's own scorer of a workdir of task `name` (e.g. R-CNN's second stage), or None: the
    engine's evaluation with the task."""
    check_choice("config.task", name, task_names())
    _load(name)
    return _SCORERS.get(name)


def task_names() -> list[str]:
    """Every task a config may name: the registered ones and those an application provides."""
    return sorted(set(_TASKS) | set(PROVIDERS))


register_task("classification", lambda *, config, aux_weight, num_classes: Classification(
    label_smoothing=config.label_smoothing, aux_weight=aux_weight))
register_task("segmentation", lambda *, config, aux_weight, num_classes: Segmentation(
    num_classes=num_classes, label_smoothing=config.label_smoothing, aux_weight=aux_weight))
