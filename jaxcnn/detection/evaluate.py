"""Score a training workdir on a split, with the workdir's own config.json and its latest checkpoint.

    result = evaluate_workdir("runs/detection/fast_rcnn/seed0", split="test")

What is reported follows the run's task:

* classification / rcnn-less tasks: the task's own metrics (eval_accuracy, eval_loss; segmentation adds
  eval_mean_iou and the per-class IoU);
* "fast_rcnn", "yolo": the task's detections of every image, scored by pycocotools (eval_map50, eval_map);
* "rcnn", "spp_net": the papers' second stage first (jaxcnn.detection.rcnn: SVMs and box regressors on the
  features of the first `second_stage_images` training canvases, cached in the workdir as second_stage.npz),
  then their detections, scored the same way.

Every result also holds seconds_per_image (the model, decoding and NMS over the split after a warm-up call,
not the COCO scoring), cnn_passes_per_image, the number of images, the checkpoint step, the host's load
average before and after and the wall time; classification adds the per-class accuracy and the confusion matrix
(rows: true class), also drawn to WORKDIR/confusion_<split>.png. Written to WORKDIR/eval_<split>.json and
WORKDIR/eval.json (the latest evaluation); the predictions on the first 8 images (detections, or per-pixel
classes) to WORKDIR/samples_<split>.npz.
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax
import numpy as np

SECOND_STAGE_IMAGES = 1000
SAMPLES = 8  # predictions of the first test images kept for pictures (samples_<split>.npz)


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def workdir_config(workdir: str):
    """The ml_collections config a workdir was trained with (its config.json)."""
    import ml_collections

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"{workdir} has no config.json; pass the --workdir of a training run.")
    with open(path) as f:
        record = json.load(f)
    cfg = record["config"]
    model = cfg.pop("model")
    sections = {k: ml_collections.ConfigDict(_tuples(v)) if isinstance(v, dict) else _tuples(v)
                for k, v in cfg.items()}
    config = ml_collections.ConfigDict(sections)
    config.model = ml_collections.ConfigDict(_tuples(model))
    from jaxcnn.train.config import base_config

    for key, default in base_config().items():  # keys added since the run was recorded: their defaults
        if key not in config:
            config[key] = default
        elif key != "model" and isinstance(default, ml_collections.ConfigDict):
            for sub, value in default.items():
                if sub not in config[key]:
                    config[key][sub] = value
    return config


def restore(setup, workdir: str):
    """The host TrainState of the latest checkpoint of `workdir` (checked against setup's model)."""
    from jaxcnn.train.checkpoint import Checkpointer

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        if ckpt.latest_step() is None:
            raise ValueError(f"no checkpoint in {workdir}/checkpoints; train it first (scripts/train.py).")
        template = setup.init_state()
        arrays, _ = ckpt.restore(template.arrays())
        return template.replace_arrays(arrays)
    finally:
        ckpt.close()


def _timed_task_eval(setup, state, data, batch: int) -> tuple[dict, float]:
    """The engine's evaluation of `data` with the task, timing the device part (after one warm-up batch)."""
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


def evaluate_workdir(workdir: str, *, split: str | None = None, write: bool = True,
                     second_stage_images: int = SECOND_STAGE_IMAGES) -> dict:
    import jaxcnn.detection  # noqa: F401  (registers the detection tasks)
    from jaxcnn.data import datasets
    from jaxcnn.train import build

    t_start = time.time()
    load_before = os.getloadavg()
    workdir = os.path.abspath(workdir)
    config = workdir_config(workdir)
    if split and config.task not in ("rcnn", "spp_net"):
        config.eval_split = split
    config.eval_examples = 0
    if config.preprocess.get("image_size", 0):  # images of any size, read through the input pipeline
        if config.task != "classification":
            raise ValueError(f"{workdir}: task {config.task!r} with preprocess.image_size is not scored here yet; "
                             "classification runs are.")
        from jaxcnn.train import inference

        report = inference.evaluate_streamed(workdir, split=config.eval_split)
        samples = {"prediction": report.pop("first_predictions")}
        result = {"workdir": workdir, "config": config.get("ablation", {}).get("name") or None,
                  "task": config.task, "model": config.model.name, "split": config.eval_split, **report}
        return _finish(workdir, config, result, samples, write, t_start, load_before)
    # only the split to score is read (and handed to build as both splits): the weights come from the checkpoint
    kw = dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
              synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)
    if config.task in ("rcnn", "spp_net"):  # the canvases are loaded below; build needs only shapes
        probe = datasets.load(config.dataset, f"{config.train_split.split('[')[0]}[:1]", **kw)
    else:
        probe = datasets.load(config.dataset, config.eval_split, **kw)
    config.batch_size = min(config.batch_size, len(probe))  # training batches are not drawn here
    setup = build(config, train_data=probe, eval_data=probe)
    state = restore(setup, workdir)
    variables = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
    result = {"workdir": workdir, "config": config.get("ablation", {}).get("name") or None, "task": config.task,
              "model": config.model.name, "split": config.eval_split, "step": int(state.step)}
    if config.task in ("rcnn", "spp_net"):
        from jaxcnn.detection import rcnn
        from jaxcnn.detection.coco import coco_map

        name = "fashion_mnist_detection_tiny_ss" if "tiny" in config.dataset else "fashion_mnist_detection_ss"
        kw = dict(data_dir_path=config.data_dir or None)
        test_split = split or "test"  # the rcnn config's own eval split holds crops; detection is on canvases
        test = datasets.load(name, test_split, **kw)
        cache = os.path.join(workdir, "second_stage.npz")
        if os.path.exists(cache):
            z = np.load(cache, allow_pickle=False)
            stage = {k: z[k] for k in z.files}
            counts = json.loads(str(stage.pop("counts_json")))
        else:
            train_split = config.train_split.split("[")[0]
            train = datasets.load(name, f"{train_split}[:{second_stage_images}]", **kw)
            t = time.perf_counter()
            stage = rcnn.fit_second_stage(setup.model, variables, setup.preprocess, config.task, train)
            counts = dict(stage.pop("counts"), seconds=round(time.perf_counter() - t, 1),
                          images=len(train))
            np.savez(cache, counts_json=json.dumps(counts), **stage)
        dets, seconds, passes = rcnn.detect(setup.model, variables, setup.preprocess, config.task, stage, test)
        gts = [{"boxes": test.labels["boxes"][i], "classes": test.labels["classes"][i]} for i in range(len(test))]
        r = coco_map(dets, gts, num_classes=10, image_size=test.images.shape[1:3])
        metrics = {"eval_map50": r["map50"], "eval_map": r["map"], "eval_map75": r["map75"],
                   "eval_ap50_per_class": r["ap50_per_class"], "eval_images": r["num_images"]}
        k = min(SAMPLES, len(test))
        samples = {"det_boxes": np.stack([d["boxes"] for d in dets[:k]]),
                   "det_scores": np.stack([d["scores"] for d in dets[:k]]),
                   "det_classes": np.stack([d["classes"] for d in dets[:k]]),
                   "det_keep": np.stack([d["keep"] for d in dets[:k]])}
        result.update(metrics, seconds_per_image=seconds / len(test), cnn_passes_per_image=passes,
                      images=len(test), second_stage=counts, split=test_split)
    else:
        metrics, seconds, totals = _timed_task_eval(setup, state, setup.eval_data, config.eval_batch_size)
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
            from jaxcnn.train import inference

            confusion = np.asarray(totals["confusion"], np.int64)
            names = inference.class_names_of(config, confusion.shape[0])
            report = inference.classification_report(confusion, names)
            result.update(per_class_accuracy=report["per_class_accuracy"], class_names=report["class_names"],
                          confusion_matrix=report["confusion_matrix"])
    return _finish(workdir, config, result, samples, write, t_start, load_before)


def _finish(workdir, config, result, samples, write, t_start, load_before) -> dict:
    from jaxcnn.train.provenance import provenance

    """The host facts and the provenance (jaxcnn.train.provenance), then (write) eval_<split>.json, eval.json, samples_<split>.npz and the confusion PNG."""
    result.update(load_average_before=[round(v, 2) for v in load_before],
                  load_average_after=[round(v, 2) for v in os.getloadavg()],
                  wall_seconds=round(time.time() - t_start, 1),
                  hardware=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
                           f"jax {jax.__version__} on {jax.default_backend()}".replace("  ", " "),
                  provenance=provenance())
    if write:
        tag = result["split"].replace("[", "_").replace(":", "_").rstrip("]")
        np.savez(os.path.join(workdir, f"samples_{tag}.npz"), **samples)  # the first images' predictions
        path = os.path.join(workdir, f"eval_{tag}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(path + ".tmp", path)
        latest = os.path.join(workdir, "eval.json")  # the latest evaluation of any split
        with open(latest + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(latest + ".tmp", latest)
        result["written"], result["files"] = path, [path, latest]
        if "confusion_matrix" in result:
            from jaxcnn.train import inference

            png = os.path.join(workdir, f"confusion_{tag}.png")
            inference.plot_confusion(np.asarray(result["confusion_matrix"]), result["class_names"], png,
                                     title=f"{config.model.name} on {config.dataset} {result['split']} "
                                           f"(step {result['step']}): accuracy {result['eval_accuracy']:.4f}")
            result["files"].append(png)
    return result
