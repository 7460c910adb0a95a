"""Detection tasks for the training engine (`config.task`): what each detector learns inside the jitted step
and how it is scored over a split (pycocotools' mAP).

* "fast_rcnn"  Fast R-CNN (Girshick 2015): per image `rois_per_image` regions sampled from
               batch["label"]["proposals"] and the ground truth (`boxes.sample_rois`: 25% foreground at IoU
               >= 0.5, background in [0.1, 0.5)) with the step's key, the model called on them, and the
               multi-task loss L = L_cls + lambda [u >= 1] L_loc (softmax cross-entropy + smooth L1 of the
               true class's box deltas, lambda = 1), both averaged over the sampled regions.
* "spp_net"    SPP-net's fine-tuning (He et al. 2014, section 4): the same sampling, softmax only (its box
               regressors and SVMs are trained afterwards on the features: jaxcnn.detection.rcnn).
* "rcnn"       R-CNN's fine-tuning (Girshick et al. 2014): softmax over warped region crops (labels 0 =
               background, 1.. = class + 1), the model called with one whole-image region per crop.
* "yolo"       YOLOv1 (Redmon et al. 2016): targets on the S x S grid from the boxes, `yolo_loss`.

Evaluation gathers per-image detections (psum_eval = False; at most 100 per image after per-class NMS) and
the ground truth, and `summarize` scores them with pycocotools: eval_map50 (AP at IoU 0.5), eval_map
(AP at IoU .5:.95), eval_map75. Models: `FastRCNN` (region_pool "roi" or "spp") and `YOLOv1`.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn.detection.coco import coco_map
from jaxcnn.models.detection import boxes as B
from jaxcnn.models.detection import decode_yolo, yolo_loss_terms
from jaxcnn.train.tasks import Classification


def _call(apply_fn, variables, images, regions, train, kwargs):
    """apply_fn on images and regions; (outputs, updates or None)."""
    out = apply_fn(variables, images, regions, train=train, **kwargs)
    return out if "mutable" in kwargs else (out, None)


class _DetectionEval:
    """Per-image detections gathered over the split, scored by pycocotools."""

    psum_eval = False  # per-image outputs, gathered across devices

    def combine(self, totals, result):
        if totals is None:
            return {k: np.asarray(v) for k, v in result.items()}
        return {k: np.concatenate([totals[k], np.asarray(v)]) for k, v in result.items()}

    def summarize(self, totals) -> dict:
        m = np.asarray(totals["mask"]) > 0
        dets = [{"boxes": b, "scores": s, "classes": c, "keep": k} for b, s, c, k in
                zip(totals["det_boxes"][m], totals["det_scores"][m], totals["det_classes"][m], totals["det_keep"][m])]
        gts = [{"boxes": b, "classes": c} for b, c in zip(totals["gt_boxes"][m], totals["gt_classes"][m])]
        size = tuple(int(v) for v in np.asarray(totals["image_size"])[0])
        r = coco_map(dets, gts, num_classes=self.object_classes, image_size=size)
        return {"eval_map50": r["map50"], "eval_map": r["map"], "eval_map75": r["map75"],
                "eval_ap50_per_class": r["ap50_per_class"], "eval_images": r["num_images"]}

    def _sums(self, det, batch, images):
        n = images.shape[0]
        return {"det_boxes": det["boxes"], "det_scores": det["scores"], "det_classes": det["classes"],
                "det_keep": det["keep"], "gt_boxes": batch["label"]["boxes"], "gt_classes": batch["label"]["classes"],
                "mask": batch["mask"], "image_size": jnp.broadcast_to(jnp.asarray(images.shape[1:3]), (n, 2))}


class FastRCNNTask(_DetectionEval):
    name = "fast_rcnn"

    def __init__(self, *, num_classes: int, rois_per_image: int = 64, fg_fraction: float = 0.25,
                 bbox_weight: float = 1.0, nms_iou: float = 0.3, flip: bool = False,
                 box_mean=(0.0, 0.0, 0.0, 0.0), box_std=B.BBOX_STDS):
        self.num_classes = int(num_classes)  # with the background
        self.object_classes = self.num_classes - 1
        self.rois_per_image, self.fg_fraction = int(rois_per_image), float(fg_fraction)
        self.bbox_weight, self.nms_iou = float(bbox_weight), float(nms_iou)
        # flip: training images mirrored left-right at random (half of them), with their boxes and proposals;
        # box_mean / box_std: the regression targets are (t - mean) / std (Fast R-CNN: the training data's)
        self.flip = bool(flip)
        self.box_mean, self.box_std = tuple(float(v) for v in box_mean), tuple(float(v) for v in box_std)

    def _normalised(self, targets):
        raw = targets * jnp.asarray(B.BBOX_STDS, targets.dtype)  # sample_rois' targets are divided by BBOX_STDS
        return (raw - jnp.asarray(self.box_mean, raw.dtype)) / jnp.asarray(self.box_std, raw.dtype)

    def apply(self, apply_fn, variables, images, batch, *, train: bool, key=None, **kwargs):
        lab = batch["label"]
        n = images.shape[0]
        if train:
            if self.flip:
                key, flip_key = jax.random.split(key)
                mirror = jax.random.bernoulli(flip_key, 0.5, (n,))
                width = images.shape[2]
                images = jnp.where(mirror[:, None, None, None], images[:, :, ::-1], images)
                lab = {**lab, **{k: jnp.where(mirror[:, None, None], B.flip_boxes(lab[k], width), lab[k])
                                 for k in ("proposals", "boxes")}}
            sample = jax.vmap(lambda k, p, b, c: B.sample_rois(k, p, b, c, num_rois=self.rois_per_image,
                                                               fg_fraction=self.fg_fraction))
            rois, labels, targets, weights = sample(jax.random.split(key, n), lab["proposals"], lab["boxes"],
                                                    lab["classes"])
            extra = {"labels": labels, "targets": self._normalised(targets), "weights": weights}
        else:
            rois = lab["proposals"]
            extra = {"weights": B.valid_boxes(rois).astype(jnp.float32)}
        rois = jnp.where(B.valid_boxes(rois)[..., None], rois, jnp.asarray([0, 0, 1, 1], rois.dtype))
        (cls, bbox), updates = _call(apply_fn, variables, images, B.to_roi_rows(rois), train, kwargs)
        r = rois.shape[1]
        out = {"cls": cls.reshape(n, r, -1), "bbox": bbox.reshape(n, r, -1, 4), "rois": rois, **extra,
               "image_hw": images.shape[1:3]}
        return (out, updates) if updates is not None else out

    def loss(self, out, batch, aux=()):
        cls, labels, w = out["cls"].astype(jnp.float32), out["labels"], out["weights"]
        count = jnp.maximum(jnp.sum(w), 1.0)
        loss_cls = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(cls, labels) * w) / count
        deltas = jnp.take_along_axis(out["bbox"].astype(jnp.float32), labels[..., None, None], axis=2)[..., 0, :]
        fg = (labels > 0).astype(jnp.float32) * w
        loss_loc = jnp.sum(B.smooth_l1(deltas - out["targets"]).sum(-1) * fg) / count
        loss = loss_cls + self.bbox_weight * loss_loc
        acc = jnp.sum((jnp.argmax(cls, -1) == labels) * w) / count
        return loss, {"accuracy": acc, "loss_cls": loss_cls, "loss_loc": loss_loc, "fg_fraction": jnp.sum(fg) / count}

    def detect(self, out):
        """Per-image detections from the model's outputs on all proposals (softmax scores; the class's
        regressed box when bbox_weight > 0, else the proposal itself)."""
        probs = jax.nn.softmax(out["cls"].astype(jnp.float32), -1)[..., 1:]
        if self.bbox_weight > 0:
            raw = (out["bbox"][:, :, 1:].astype(jnp.float32) * jnp.asarray(self.box_std, jnp.float32)
                   + jnp.asarray(self.box_mean, jnp.float32))
            bx = B.decode(raw, out["rois"][:, :, None], stds=(1.0, 1.0, 1.0, 1.0), clip_to=out["image_hw"])
        else:
            bx = out["rois"]
        return jax.vmap(lambda s, b, v: B.detections(s, b, v > 0, nms_iou=self.nms_iou))(probs, bx, out["weights"])

    def eval_sums(self, out, batch):
        return self._sums(self.detect(out), batch, jnp.zeros((out["cls"].shape[0], *out["image_hw"])))

    def __hash__(self):
        return hash((self.name, self.num_classes, self.rois_per_image, self.fg_fraction, self.bbox_weight,
                     self.nms_iou, self.flip, self.box_mean, self.box_std))

    def __eq__(self, other):
        return type(other) is type(self) and hash(self) == hash(other)


class SPPNetTask(FastRCNNTask):
    """SPP-net's fine-tuning: Fast R-CNN's sampling, softmax only (bbox_weight 0)."""

    name = "spp_net"

    def __init__(self, *, num_classes: int, **kw):
        super().__init__(num_classes=num_classes, bbox_weight=0.0, **kw)


class RCNNTask:
    """R-CNN's fine-tuning on warped crops: softmax cross-entropy over (background + classes); the model's
    class scores for one whole-image region per crop."""

    name = "rcnn"
    psum_eval = True

    def apply(self, apply_fn, variables, images, batch, *, train: bool, key=None, **kwargs):
        (cls, _bbox), updates = _call(apply_fn, variables, images, None, train, kwargs)
        return (cls, updates) if updates is not None else cls

    def __init__(self):
        self._cls = Classification()

    def loss(self, logits, batch, aux=()):
        return self._cls.loss(logits, batch)

    def eval_sums(self, logits, batch):
        return self._cls.eval_sums(logits, batch)

    def combine(self, totals, result):
        return self._cls.combine(totals, result)

    def summarize(self, sums):
        return self._cls.summarize(sums)

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        return type(other) is type(self)


def yolo_targets(boxes, classes, image_hw, grid: int, num_classes: int):
    """YOLOv1's (N, S, S, 5 + C) targets from (N, G, 4) pixel boxes and (N, G) classes (-1 padding): each
    object in the cell of its centre (x, y its offset in the cell, w, h fractions of the image, obj 1,
    one-hot class); two objects in one cell: one of them (the paper's grid holds one)."""
    h, w = image_hw
    n, g = classes.shape
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / (2 * w), (boxes[..., 1] + boxes[..., 3]) / (2 * h)
    bw, bh = (boxes[..., 2] - boxes[..., 0]) / w, (boxes[..., 3] - boxes[..., 1]) / h
    col = jnp.clip(jnp.floor(cx * grid), 0, grid - 1)
    row = jnp.clip(jnp.floor(cy * grid), 0, grid - 1)
    vec = jnp.concatenate([jnp.stack([cx * grid - col, cy * grid - row, bw, bh, jnp.ones_like(bw)], -1),
                           jax.nn.one_hot(classes, num_classes)], -1)
    cell = jnp.where(classes >= 0, (row * grid + col).astype(jnp.int32), grid * grid)
    t = jnp.zeros((n, grid * grid, 5 + num_classes), jnp.float32)
    t = t.at[jnp.arange(n)[:, None], cell].set(vec, mode="drop")
    return t.reshape(n, grid, grid, 5 + num_classes)


class YOLOTask(_DetectionEval):
    name = "yolo"

    def __init__(self, *, num_classes: int, num_boxes: int = 2, nms_iou: float = 0.5):
        self.object_classes = int(num_classes)
        self.num_boxes, self.nms_iou = int(num_boxes), float(nms_iou)

    def apply(self, apply_fn, variables, images, batch, *, train: bool, key=None, **kwargs):
        out = apply_fn(variables, images, train=train, **kwargs)
        pred, updates = out if "mutable" in kwargs else (out, None)
        out = {"pred": pred, "image_hw": images.shape[1:3]}
        return (out, updates) if updates is not None else out

    def loss(self, out, batch, aux=()):
        pred = out["pred"].astype(jnp.float32)
        t = yolo_targets(batch["label"]["boxes"], batch["label"]["classes"], out["image_hw"], pred.shape[1],
                         self.object_classes)
        terms = yolo_loss_terms(pred, t, self.num_boxes)
        return sum(terms.values()), {f"loss_{k}": v for k, v in terms.items()}

    def detect(self, out):
        pred = out["pred"].astype(jnp.float32)
        d = decode_yolo(pred, self.num_boxes, score_threshold=0.0, iou_threshold=self.nms_iou)
        h, w = out["image_hw"]
        bx = jnp.clip(d["boxes"] * jnp.asarray([w, h, w, h], jnp.float32), 0, jnp.asarray([w, h, w, h], jnp.float32))
        order = jnp.argsort(jnp.where(d["keep"], -d["scores"], jnp.inf), axis=1)
        take = lambda a: jnp.take_along_axis(a, order if a.ndim == 2 else order[..., None], axis=1)
        return {"boxes": take(bx), "scores": take(d["scores"]), "classes": take(d["classes"]).astype(jnp.int32),
                "keep": take(d["keep"])}

    def eval_sums(self, out, batch):
        return self._sums(self.detect(out), batch, jnp.zeros((out["pred"].shape[0], *out["image_hw"])))

    def __hash__(self):
        return hash((self.name, self.object_classes, self.num_boxes, self.nms_iou))

    def __eq__(self, other):
        return type(other) is type(self) and hash(self) == hash(other)


def _recipe(config) -> dict:
    """The Fast R-CNN task's settings from config.detection (absent keys: the defaults)."""
    d = config.get("detection", {}) or {}
    out = {k: d[k] for k in ("rois_per_image", "flip") if k in d}
    if "box_target_mean" in d:
        out["box_mean"], out["box_std"] = tuple(d["box_target_mean"]), tuple(d["box_target_std"])
    return out


TASKS = {
    "fast_rcnn": lambda *, config, aux_weight, num_classes: FastRCNNTask(num_classes=num_classes,
                                                                         **_recipe(config)),
    "spp_net": lambda *, config, aux_weight, num_classes: SPPNetTask(
        num_classes=num_classes, **{k: v for k, v in _recipe(config).items() if k in ("rois_per_image", "flip")}),
    "rcnn": lambda *, config, aux_weight, num_classes: RCNNTask(),
    "yolo": lambda *, config, aux_weight, num_classes: YOLOTask(num_classes=num_classes),
}


def register() -> None:
    """Deprecated, a no-op: config.task finds the detection tasks by name (the package root registers
    jaxcnn.detection as their provider)."""
    warnings.warn("jaxcnn.detection.tasks.register() is no longer needed: config.task finds the detection tasks "
                  "by name; drop the call.", DeprecationWarning, stacklevel=2)
