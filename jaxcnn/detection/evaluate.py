"""R-CNN's and SPP-net's evaluation of a workdir: the papers' second stage, then their detections.

jaxcnn.train.inference.evaluate_workdir scores every run; for the tasks "rcnn" and "spp_net" it hands the
work to `score_second_stage` (registered as their WORKDIR_SCORERS in jaxcnn.detection): SVMs and box
regressors (jaxcnn.detection.rcnn) fitted on the features of the first `second_stage_images` training canvases,
cached in the workdir as second_stage.npz, then the detections of the split's canvases, scored by pycocotools.

`workdir_config`, `restore` and `evaluate_workdir` lived here before the workdir layer moved to jaxcnn.train;
their old names still work this release, with a DeprecationWarning.
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np

from jaxcnn.data import datasets
from jaxcnn.detection import rcnn
from jaxcnn.detection.coco import coco_map
from jaxcnn.train import inference, workdir as _workdir
from jaxcnn.train.setup import build

SECOND_STAGE_IMAGES = 1000
SAMPLES = inference.SAMPLES


def score_second_stage(workdir: str, config, *, split=None, second_stage_images: int = SECOND_STAGE_IMAGES
                       ) -> tuple[dict, dict]:
    """(result fields, samples) of an "rcnn" or "spp_net" workdir on the canvases of `split` (default "test"):
    the second stage fitted (or read from WORKDIR/second_stage.npz), then its detections, scored by pycocotools."""
    # build needs only shapes: one training crop; the canvases are loaded below
    kw = dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
              synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)
    probe = datasets.load(config.dataset, f"{config.train_split.split('[')[0]}[:1]", **kw)
    config.batch_size = min(config.batch_size, len(probe))
    setup = build(config, train_data=probe, eval_data=probe)
    state = _workdir.restore(setup, workdir)
    variables = state.variables()  # the EMA's, when the run kept one
    name = "fashion_mnist_detection_tiny_ss" if "tiny" in config.dataset else "fashion_mnist_detection_ss"
    kw = dict(data_dir_path=config.data_dir or None)
    test_split = split or "test"  # the rcnn config's own eval split holds crops; detection is on canvases
    test = datasets.load(name, test_split, **kw)
    cache = os.path.join(workdir, "second_stage.npz")
    d = config.detection
    # what the second stage was fitted with: a cache fitted otherwise (older SVMs, another C) is fitted again
    settings = {"svm_hard_negative_mining": bool(d.svm_hard_negative_mining),
                "svm_hard_negative_epochs": int(d.svm_hard_negative_epochs), "svm_c": float(d.svm_c),
                "svm_pos_weight": float(d.svm_pos_weight), "images": int(second_stage_images)}
    stage = None
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        stage = {k: z[k] for k in z.files}
        counts = json.loads(str(stage.pop("counts_json")))
        if counts.get("settings") != settings:
            stage = None
    if stage is None:
        train_split = config.train_split.split("[")[0]
        train = datasets.load(name, f"{train_split}[:{second_stage_images}]", **kw)
        t = time.perf_counter()
        stage = rcnn.fit_second_stage(setup.model, variables, setup.preprocess, config.task, train,
                                      hard_negative_mining=d.svm_hard_negative_mining,
                                      hard_negative_epochs=d.svm_hard_negative_epochs, c=d.svm_c,
                                      pos_weight=d.svm_pos_weight)
        counts = dict(stage.pop("counts"), seconds=round(time.perf_counter() - t, 1), images=len(train),
                      settings=settings)
        tmp = f"{cache}.{os.getpid()}.tmp.npz"
        np.savez(tmp, counts_json=json.dumps(counts), **stage)
        os.replace(tmp, cache)  # atomic: a killed scoring leaves no half cache
    dets, seconds, passes = rcnn.detect(setup.model, variables, setup.preprocess, config.task, stage, test)
    gts = [{"boxes": test.labels["boxes"][i], "classes": test.labels["classes"][i]} for i in range(len(test))]
    r = coco_map(dets, gts, num_classes=10, image_size=test.images.shape[1:3])
    k = min(SAMPLES, len(test))
    samples = {"det_boxes": np.stack([d["boxes"] for d in dets[:k]]),
               "det_scores": np.stack([d["scores"] for d in dets[:k]]),
               "det_classes": np.stack([d["classes"] for d in dets[:k]]),
               "det_keep": np.stack([d["keep"] for d in dets[:k]])}
    fields = {"step": int(state.step), "eval_map50": r["map50"], "eval_map": r["map"], "eval_map75": r["map75"],
              "eval_ap50_per_class": r["ap50_per_class"], "eval_images": r["num_images"],
              "seconds_per_image": seconds / len(test), "cnn_passes_per_image": passes, "images": len(test),
              "second_stage": counts, "split": test_split}
    return fields, samples


def _moved(name: str, where: str):
    warnings.warn(f"jaxcnn.detection.evaluate.{name} moved to {where}.{name}; import it from there (the old path "
                  "goes in the next release).", DeprecationWarning, stacklevel=3)


def workdir_config(workdir: str):
    """Deprecated: jaxcnn.train.workdir.workdir_config."""
    _moved("workdir_config", "jaxcnn.train.workdir")
    return _workdir.workdir_config(workdir)


def restore(setup, workdir: str):
    """Deprecated: jaxcnn.train.workdir.restore."""
    _moved("restore", "jaxcnn.train.workdir")
    return _workdir.restore(setup, workdir)


def evaluate_workdir(workdir: str, *, split: str | None = None, write: bool = True,
                     second_stage_images: int = SECOND_STAGE_IMAGES) -> dict:
    """Deprecated: jaxcnn.train.inference.evaluate_workdir (second_stage_images is an option of the rcnn and
    spp_net tasks there)."""
    _moved("evaluate_workdir", "jaxcnn.train.inference")
    options = ({"second_stage_images": second_stage_images}
               if inference.workdir_scorer(_workdir.workdir_config(workdir).task) is not None else {})
    return inference.evaluate_workdir(workdir, split=split, write=write, **options)
