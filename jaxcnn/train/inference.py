"""Use a finished training run: its own config, its latest weights and its class names.

    loaded = load_run("runs/fashion")             # config.json + the latest checkpoint
    probs = loaded.probabilities(images)          # uint8 (N, H, W, C) as the dataset stores them
    top = predict_files("runs/fashion", ["shirt.png"], top=5)
    result = evaluate_workdir("runs/fashion", split="test")   # scored, written to eval_test.json

`confusion_matrix` and `classification_report` give the per-class view that
scripts/evaluate.py prints and saves for a classification run.

evaluate_workdir reports what the run's task reports: the task's own metrics
(eval_accuracy, eval_loss; segmentation adds eval_mean_iou and the per-class
IoU; detection tasks eval_map50 and eval_map from pycocotools), or, for a task
whose application scores a workdir its own way (jaxcnn.train.tasks'
WORKDIR_SCORERS: R-CNN's and SPP-net's second stage), what that scorer returns.
Every result also holds seconds_per_image (the model, decoding and NMS over
the split after a warm-up call, not the COCO scoring), cnn_passes_per_image,
the number of images, the checkpoint step, the host's load average before and
after and the wall time; classification adds the per-class accuracy and the
confusion matrix (rows: true class), also drawn to WORKDIR/confusion_<split>.png.
Written to WORKDIR/eval_<split>.json and WORKDIR/eval.json (the latest
evaluation); the predictions on the first 8 images (detections, or per-pixel
classes) to WORKDIR/samples_<split>.npz.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn._extras import MissingExtra, require
from jaxcnn.data import datasets
from jaxcnn.data.images import bomb, check_pixels, eval_image
from jaxcnn.data.pipeline import eval_batches
from jaxcnn.data.sources import open_split
from jaxcnn.models.detection import truncated_svd_params
import jaxcnn.train.provenance as _provenance
from jaxcnn.train.config import run_name
from jaxcnn.train.setup import build
from jaxcnn.train.tasks import workdir_scorer
from jaxcnn.train.workdir import check_data, progress_note, restore, workdir_config, write_atomic

SAMPLES = 8  # predictions of the first test images kept for pictures (samples_<split>.npz)


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A workdir's model with its latest weights. `image_shape` is the (H, W, C) of the dataset's images (what
    `preprocess` takes); `class_names[i]` names output i (after config.classes, if the run used a subset)."""

    config: object
    model: object
    variables: dict
    preprocess: Callable
    image_shape: tuple
    class_names: tuple
    step: int
    num_steps: int = 0  # config.num_steps: the step a finished run's checkpoint is at
    note: Optional[str] = None  # one line when the run is unfinished or was interrupted (workdir.progress_note)

    def logits(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """The model's logits (N, classes) on uint8 `images` (N, H, W, C), evaluation mode, in batches."""
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"images must be (N, {', '.join(map(str, self.image_shape))}) as the run's dataset "
                             f"stores them, got {images.shape}; read files with read_image(path, image_shape).")
        fn = _apply_fn(self.model, self.preprocess)
        out = [np.asarray(fn(self.variables, images[i:i + batch])) for i in range(0, len(images), batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def probabilities(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        logits = self.logits(images, batch)
        return np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1))


def _apply_fn(model, preprocess):
    @jax.jit
    def apply(variables, images):
        out = model.apply(variables, preprocess(images, None, False), train=False)
        return out[0] if isinstance(out, tuple) else out  # models with auxiliary heads return (logits, aux)

    return apply


def class_names_of(config, num_outputs: int, recorded: Optional[dict] = None) -> tuple:
    """The names of a run's outputs: the label names its workdir recorded (`recorded`: config.json's "data",
    jaxcnn.data.identity), else the dataset's (config.classes picks and orders them)."""
    if isinstance(recorded, dict) and isinstance(recorded.get("class_names"), list):
        names = [str(n) for n in recorded["class_names"]]
    else:
        try:
            split = open_split(config.dataset, config.eval_split, data_dir=config.data_dir or None,
                               synthetic_shape=tuple(config.synthetic_shape), synthetic_size=config.synthetic_size,
                               num_classes=config.num_classes, seed=config.seed)
            names = list(split.class_names)
        except (ValueError, TypeError):
            names = []
    if config.classes:
        names = [names[c] if c < len(names) else str(c) for c in config.classes]
    if len(names) != num_outputs:
        names = [str(i) for i in range(num_outputs)]
    return tuple(str(n) for n in names)


def load_run(workdir: str, *, split: Optional[str] = None, step: Optional[int] = None, what: str = "use",
             allow_overlap: bool = False) -> LoadedRun:
    """The model of `workdir` (a scripts/train.py workdir) with its latest checkpoint's weights. Only the
    first example of `split` (default: the run's eval split) is read, for the image shape (only its metadata
    for a run with preprocess.image_size = S, whose model sees S x S). Refused in one line (`what`: the action
    named, e.g. "predict with") when the dataset is no longer the data the run was trained on, and when
    `split` shares examples with the training split unless `allow_overlap` (config.allow_split_overlap)."""
    config = workdir_config(workdir)
    recorded = check_data(workdir, config, what)
    if split:
        config.eval_split = split
    if allow_overlap:
        config.allow_split_overlap = True
    config.eval_examples = 0
    kw = dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
              synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)
    if config.preprocess.image_size:  # images of any size, resized and centre-cropped to S x S by read_image
        meta = open_split(config.dataset, f"{config.eval_split.split('[')[0]}[:1]", data_dir=config.data_dir or None,
                          **{k: v for k, v in kw.items() if k != "data_dir_path"})
        s = config.preprocess.image_size
        probe = datasets.ArrayDataset(np.zeros((1, s, s, meta.channels), np.uint8), np.zeros(1, np.int32),
                                      meta.num_classes)
    else:
        probe = datasets.load(config.dataset, f"{config.eval_split.split('[')[0]}[:1]", **kw)
    if config.classes:  # build checks the labels against the subset: relabel the probe's one example
        probe = datasets.ArrayDataset(probe.images, np.zeros(1, np.int32), len(config.classes))
    config.batch_size = 1
    config.parallel = "none"  # one process scoring a few files: a mesh run's batch of 1 would not divide
    setup = build(config, train_data=probe, eval_data=probe)
    state = restore(setup, workdir, step)
    variables = state.variables()  # the EMA's, when the run kept one
    num_outputs = len(config.classes) if config.classes else probe.num_classes
    return LoadedRun(config, setup.model, variables, setup.preprocess, tuple(probe.images.shape[1:]),
                     class_names_of(config, num_outputs, recorded), int(state.step), int(config.num_steps),
                     progress_note(workdir, int(state.step), int(config.num_steps)) if step is None else None)


def evaluate_streamed(workdir: str, *, split: Optional[str] = None, samples: int = 8,
                      step: Optional[int] = None, allow_overlap: bool = False) -> dict:
    """Score a classification run that reads its data through the input pipeline (preprocess.image_size = S):
    `split` (default: the run's eval split) streamed by jaxcnn.data.eval_batches (shorter side resized, the
    centre S x S, as the engine evaluates), never held in memory. Returns eval_loss (softmax cross-entropy),
    eval_accuracy, per_class_accuracy, class_names, confusion_matrix, images, seconds_per_image (the model
    alone), step, and first_predictions (the classes of the first `samples` images)."""
    run = load_run(workdir, split=split, step=step, what="evaluate", allow_overlap=allow_overlap)
    config = run.config
    data = open_split(config.dataset, config.eval_split, data_dir=config.data_dir or None,
                      synthetic_shape=tuple(config.synthetic_shape), synthetic_size=config.synthetic_size,
                      num_classes=config.num_classes, seed=config.seed, in_memory=False)
    k = len(run.class_names)
    fn = _apply_fn(run.model, run.preprocess)
    confusion = np.zeros((k, k), np.int64)
    loss_sum, seconds, first = 0.0, 0.0, []
    batches = eval_batches(data, batch_size=config.eval_batch_size, image_size=config.preprocess.image_size or None,
                           workers=config.get("data_workers", 0))
    try:
        for i, batch in enumerate(batches):
            t = time.perf_counter()
            logits = np.asarray(jax.block_until_ready(fn(run.variables, batch["image"])), np.float64)
            if i:  # the first call compiles
                seconds += time.perf_counter() - t
            real = batch["mask"] > 0
            logits, labels = logits[real], np.asarray(batch["label"])[real].astype(np.int64)
            top = logits.max(-1, keepdims=True)
            log_z = (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[:, 0]
            loss_sum += float(np.sum(log_z - logits[np.arange(len(labels)), labels]))
            predictions = logits.argmax(-1)
            confusion += confusion_matrix(labels, predictions, k)
            first.extend(predictions[:max(0, samples - len(first))].tolist())
    finally:
        batches.close()
    n = int(confusion.sum())
    report = classification_report(confusion, run.class_names)
    timed = max(n - config.eval_batch_size, 1)
    return {"step": run.step, "num_steps": run.num_steps, **({"note": run.note} if run.note else {}),
            "eval_loss": loss_sum / n, "eval_accuracy": report["accuracy"],
            "per_class_accuracy": report["per_class_accuracy"], "class_names": report["class_names"],
            "confusion_matrix": report["confusion_matrix"], "images": n, "seconds_per_image": seconds / timed,
            "cnn_passes_per_image": 1.0, "first_predictions": np.asarray(first, np.int32)}


def read_image(path: str, image_shape: Sequence[int], *, crop: bool = False) -> np.ndarray:
    """Image file `path` (PNG, JPEG, ...) as uint8 (H, W, C) of `image_shape`: converted to grey or RGB as C
    asks, resized (bilinear) to H x W when its size differs; with `crop`, as evaluation does with
    preprocess.image_size (jaxcnn.data.images.eval_image: shorter side to H / 0.875, the centre H x W)."""
    require("PIL")
    from PIL import Image, UnidentifiedImageError

    h, w, c = (int(v) for v in image_shape)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file {path!r}")
    if crop:
        try:
            with open(path, "rb") as f:
                return eval_image(f.read(), channels=c, size=(h, w), where=path).reshape(h, w, c)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{path} is not a readable image ({type(e).__name__}); pass PNG or JPEG files") from None
    try:
        with Image.open(path) as im:
            check_pixels(im.width, im.height, path)  # an untrusted file: its header is checked before decoding
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            arr = np.asarray(im, np.uint8)
    except Image.DecompressionBombError:
        raise bomb(path) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not a readable image ({type(e).__name__}); pass PNG or JPEG files") from None
    return arr.reshape(h, w, c)


def predict_files(workdir: str, paths: Sequence[str], *, top: int = 5, step: Optional[int] = None) -> list[dict]:
    """For each image file, the `top` most probable classes of `workdir`'s model: [{"path", "top": [{"class",
    "name", "probability"}, ...]}, ...], most probable first."""
    if not paths:
        raise ValueError("pass at least one image file")
    run = load_run(workdir, step=step, what="predict with")
    crop = bool(run.config.preprocess.get("image_size", 0))
    images = np.stack([read_image(p, run.image_shape, crop=crop) for p in paths])
    probs = run.probabilities(images)
    k = min(int(top), probs.shape[1])
    out = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p, kind="stable")[:k]
        out.append({"path": path, "top": [{"class": int(i), "name": run.class_names[i],
                                           "probability": float(p[i])} for i in order],
                    **({"note": run.note} if run.note else {})})
    return out


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    labels = np.asarray(labels, np.int64).ravel()
    predictions = np.asarray(predictions, np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in length: {labels.shape} vs {predictions.shape}")
    k = int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= k or predictions.min() < 0 or predictions.max() >= k):
        raise ValueError(f"class ids must lie in 0..{k - 1}")
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def classification_report(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy and per-class accuracy (recall: the diagonal over each row's total; None for a class with no
    examples) from a confusion matrix."""
    confusion = np.asarray(confusion)
    rows = confusion.sum(1)
    total = int(rows.sum())
    per_class = {str(n): (float(confusion[i, i] / rows[i]) if rows[i] else None)
                 for i, n in enumerate(class_names)}
    return {"accuracy": float(np.trace(confusion) / total) if total else None, "per_class_accuracy": per_class,
            "confusion_matrix": confusion.astype(int).tolist(), "class_names": [str(n) for n in class_names]}


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str, title: str = "") -> None:
    """The confusion matrix as a PNG (rows: true class, columns: predicted; each row normalised)."""
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, np.float64)
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if confusion[i, j]:
                    ax.text(j, i, f"{int(confusion[i, j])}", ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = f"{path}.tmp.{os.getpid()}.png"  # private to this process: two plots at once never mix
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def timed_task_eval(setup, state, data, batch: int) -> tuple[dict, float, dict]:
    """The engine's evaluation of `data` with the task, timing the device part (after one warm-up batch):
    (the task's summary, seconds, the totals)."""
    strategy, task = setup.strategy, setup.task
    dev = strategy.put_state(state)
    n = len(data)

    def one(start):
        idx = np.arange(start, start + batch)
        mask = (idx < n).astype(np.float32)
        out = strategy.evaluate(dev, strategy.put_batch({**data.take(np.where(idx < n, idx, 0)), "mask": mask}))
        return jax.block_until_ready(out)

    one(0)  # compile
    totals, seconds = None, 0.0
    for start in range(0, n, batch):
        t = time.perf_counter()
        out = one(start)
        seconds += time.perf_counter() - t
        totals = task.combine(totals, jax.tree_util.tree_map(np.asarray, out))
    return task.summarize(totals), seconds, totals


def evaluate_workdir(workdir: str, *, split: Optional[str] = None, write: bool = True, step: Optional[int] = None,
                     allow_overlap: bool = False, svd_ranks: Sequence[int] = (),
                     **task_options) -> dict:
    """Score `workdir` (a training run) on `split` (default: its eval split) with its own config.json and its
    checkpoint at `step` (default: the latest); written to WORKDIR/eval_<split>.json (`write`). See the module docstring for what is
    reported. `task_options` go to the scorer of a task whose application scores a workdir its own way (R-CNN's
    `second_stage_images`). Refused in one line when the dataset is no longer the data the run was trained on,
    and when `split` shares examples with the training split unless `allow_overlap` says it is meant; an
    unfinished run's result carries num_steps and a "note" saying so. `svd_ranks` (k6, k7): a Fast R-CNN run
    scored with fc6 and fc7 replaced by their truncated SVD (Girshick 2015, section 3.1; written to
    eval_<split>_svd<k6>x<k7>.json, so the dense layers' record stays)."""
    t_start = time.time()
    load_before = os.getloadavg()
    workdir = os.path.abspath(workdir)
    config = workdir_config(workdir)
    recorded = check_data(workdir, config, "evaluate")  # the data must be what the run was trained on
    if allow_overlap:
        config.allow_split_overlap = True
    config.eval_examples = 0
    scorer = workdir_scorer(config.task)
    if task_options and scorer is None:
        raise TypeError(f"evaluate_workdir got {sorted(task_options)}, options that task {config.task!r} does not "
                        "take; drop them.")
    if split and scorer is None:
        config.eval_split = split
    result = {"workdir": workdir, "config": run_name(config), "task": config.task,
              "model": config.model.name, "split": config.eval_split}
    svd_ranks = _check_svd_ranks(config, svd_ranks)
    if scorer is not None:  # the application's own evaluation (it builds, restores and reads what it needs)
        if step is not None:
            raise ValueError(f"task {config.task!r} is scored at its latest checkpoint only; drop --step.")
        fields, samples = scorer(workdir, config, split=split, **task_options)
        result.update(fields)
        if "step" in result:
            note = progress_note(workdir, int(result["step"]), int(config.num_steps))
            result.update(num_steps=int(config.num_steps), **({"note": note} if note else {}))
        return _finish(workdir, config, result, samples, write, t_start, load_before)
    if config.preprocess.get("image_size", 0):  # images of any size, read through the input pipeline
        if config.task != "classification":
            raise ValueError(f"{workdir}: task {config.task!r} with preprocess.image_size is not scored here yet; "
                             "classification runs are.")
        report = evaluate_streamed(workdir, split=config.eval_split, step=step,
                                   allow_overlap=bool(config.allow_split_overlap))
        samples = {"prediction": report.pop("first_predictions")}
        result.update(report)
        return _finish(workdir, config, result, samples, write, t_start, load_before)
    # only the split to score is read (and handed to build as both splits): the weights come from the checkpoint
    kw = dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
              synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)
    probe = datasets.load(config.dataset, config.eval_split, **kw)
    config.batch_size = min(config.batch_size, len(probe))  # training batches are not drawn here
    setup = build(config, train_data=probe, eval_data=probe)
    state = restore(setup, workdir, step)
    if svd_ranks:  # the trained dense layers factorised, and the model built with the two-layer fc6/fc7
        with config.unlocked():
            config.model.svd_ranks = svd_ranks
        setup = build(config, train_data=probe, eval_data=probe)
        state = _truncated_svd_state(state, svd_ranks).replace(apply_fn=setup.model.apply)
        result["svd_ranks"] = list(svd_ranks)
    variables = state.variables()  # the EMA's, when the run kept one
    result.update(step=int(state.step), num_steps=int(config.num_steps))
    note = progress_note(workdir, int(state.step), int(config.num_steps)) if step is None else None
    if note:
        result["note"] = note
    metrics, seconds, totals = timed_task_eval(setup, state, setup.eval_data, config.eval_batch_size)
    k = min(SAMPLES, len(setup.eval_data))
    if "det_boxes" in totals:
        samples = {key: totals[key][:k] for key in ("det_boxes", "det_scores", "det_classes", "det_keep")}
    else:  # segmentation / classification: the model's outputs on the first images
        x = setup.preprocess(setup.eval_data.images[:k], None, False)
        out = setup.model.apply(variables, x, train=False)
        samples = {"prediction": np.asarray(np.argmax(out, -1), np.int32)}
    result.update(metrics, seconds_per_image=seconds / len(setup.eval_data), cnn_passes_per_image=1.0,
                  images=len(setup.eval_data))
    if config.task == "classification":  # the confusion matrix came with the one evaluation pass
        confusion = np.asarray(totals["confusion"], np.int64)
        names = class_names_of(config, confusion.shape[0], recorded)
        report = classification_report(confusion, names)
        result.update(per_class_accuracy=report["per_class_accuracy"], class_names=report["class_names"],
                      confusion_matrix=report["confusion_matrix"])
    return _finish(workdir, config, result, samples, write, t_start, load_before)


def _check_svd_ranks(config, svd_ranks) -> tuple:
    """svd_ranks as a tuple of two positive ints, refused in one line for a model other than Fast R-CNN's."""
    ranks = tuple(int(k) for k in svd_ranks or ())
    if not ranks:
        return ()
    if config.model.name != "fast_rcnn":
        raise ValueError(f"svd_ranks: truncated SVD factorises Fast R-CNN's fc6 and fc7; this run's model is "
                         f"{config.model.name!r}. Drop --svd_ranks.")
    if len(ranks) != 2 or min(ranks) < 1:
        raise ValueError(f"svd_ranks must be two positive ranks k6,k7 (e.g. --svd_ranks 64,32), got {ranks}.")
    if tuple(config.model.get("svd_ranks", ()) or ()):
        raise ValueError(f"svd_ranks: this run was trained with svd_ranks {tuple(config.model.svd_ranks)} "
                         "already; its fc6/fc7 are factorised. Score it without --svd_ranks.")
    return ranks


def _truncated_svd_state(state, ranks):
    """The restored state with fc6/fc7 (and the EMA's, when kept) replaced by their rank-`ranks` factors (the
    optimizer's state keeps the dense shapes: nothing here trains)."""
    def convert(params):
        return jax.tree_util.tree_map(jnp.asarray, truncated_svd_params(dict(params), ranks))

    ema = None if state.ema is None else {**state.ema, "params": convert(state.ema["params"])}
    return state.replace(params=convert(state.params), ema=ema)


def _finish(workdir, config, result, samples, write, t_start, load_before) -> dict:
    """The host facts and the provenance (jaxcnn.train.provenance), then (write) eval_<split>.json, eval.json,
    samples_<split>.npz and the confusion PNG, each through a private temporary file and a rename (two
    evaluations at once never mix their files)."""
    result.update(load_average_before=[round(v, 2) for v in load_before],
                  load_average_after=[round(v, 2) for v in os.getloadavg()],
                  wall_seconds=round(time.time() - t_start, 1),
                  hardware=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
                           f"jax {jax.__version__} on {jax.default_backend()}".replace("  ", " "),
                  provenance=_provenance.provenance())  # looked up when called (tests replace it)
    if write:
        tag = result["split"].replace("[", "_").replace(":", "_").rstrip("]")
        if result.get("svd_ranks"):  # the dense layers' record of the split stays beside it
            tag += "_svd" + "x".join(str(k) for k in result["svd_ranks"])
        samples_path = os.path.join(workdir, f"samples_{tag}.npz")  # the first images' predictions
        tmp = f"{samples_path}.tmp.{os.getpid()}.npz"
        np.savez(tmp, **samples)
        os.replace(tmp, samples_path)
        path = os.path.join(workdir, f"eval_{tag}.json")
        write_atomic(path, json.dumps(result, indent=1))
        latest = os.path.join(workdir, "eval.json")  # the latest evaluation of any split
        write_atomic(latest, json.dumps(result, indent=1))
        result["written"], result["files"] = path, [path, latest]
        if "confusion_matrix" in result:
            png = os.path.join(workdir, f"confusion_{tag}.png")
            try:
                plot_confusion(np.asarray(result["confusion_matrix"]), result["class_names"], png,
                               title=f"{config.model.name} on {config.dataset} {result['split']} "
                                     f"(step {result['step']}): accuracy {result['eval_accuracy']:.4f}")
                result["files"].append(png)
            except MissingExtra as e:  # the scores stand (and are written); only the picture is not drawn
                result["notes"] = [f"{os.path.basename(png)} not drawn: {e}"]
    return result
