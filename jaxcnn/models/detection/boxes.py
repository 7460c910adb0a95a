"""Boxes, the one module for them: IoU and non-max suppression, and the box coding, region sampling,
smooth L1 and per-class detections of the region-based detectors. Pure and jit-able (static shapes).

Boxes are (x1, y1, x2, y2) corners unless said otherwise: in image pixels, continuous (COCO's convention:
width = x2 - x1). `ops.roi_pool` takes Caffe's inclusive corners, so a region is handed to it as
(x1, y1, x2 - 1, y2 - 1) (`to_roi_rows`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def box_iou(a, b):
    """IoU of (..., 4) corner boxes, broadcast over the leading axes."""
    iw = jnp.clip(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
    ih = jnp.clip(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
    inter = iw * ih
    area = lambda z: jnp.clip(z[..., 2] - z[..., 0], 0) * jnp.clip(z[..., 3] - z[..., 1], 0)
    union = area(a) + area(b) - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_threshold: float = 0.5, score_threshold: float = -jnp.inf, classes=None):
    """Greedy non-max suppression with static shapes.

    Args:
      boxes: (M, 4) corners. scores: (M,). classes: optional (M,) ints; boxes of
        different classes never suppress each other.
    Returns:
      keep: (M,) bool in the input order: a box is kept when its score exceeds
      score_threshold and no kept box of higher score (same class) overlaps it
      with IoU > iou_threshold.
    """
    m = boxes.shape[0]
    order = jnp.argsort(-scores)
    b, sc = boxes[order], scores[order]
    iou = box_iou(b[:, None, :], b[None, :, :])
    if classes is not None:
        c = classes[order]
        iou = jnp.where(c[:, None] == c[None, :], iou, 0.0)
    valid = sc > score_threshold

    def body(i, keep):
        earlier = jnp.arange(m) < i
        suppressed = jnp.any(keep & earlier & (iou[i] > iou_threshold))
        return keep.at[i].set(valid[i] & ~suppressed)

    keep_sorted = jax.lax.fori_loop(0, m, body, jnp.zeros((m,), bool))
    return jnp.zeros((m,), bool).at[order].set(keep_sorted)


# Fast R-CNN's normalisation of the regression targets (BBOX_NORMALIZE_STDS); the means are 0.
BBOX_STDS = (0.1, 0.1, 0.2, 0.2)
_MAX_LOG = math.log(1000.0 / 16.0)  # as py-faster-rcnn's bbox_transform_inv clamp (math, not jnp: importing starts no JAX backend)


def encode(gt, rois, stds=BBOX_STDS):
    """R-CNN's regression targets (appendix C): t_x = (g_x - p_x) / p_w, t_y likewise, t_w = log(g_w / p_w),
    t_h = log(g_h / p_h), with centres and sizes of the (..., 4) boxes; divided by `stds`."""
    pw, ph = rois[..., 2] - rois[..., 0], rois[..., 3] - rois[..., 1]
    gw, gh = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    pw, ph = jnp.maximum(pw, 1e-3), jnp.maximum(ph, 1e-3)
    gw, gh = jnp.maximum(gw, 1e-3), jnp.maximum(gh, 1e-3)
    t = jnp.stack([(gt[..., 0] + 0.5 * gw - rois[..., 0] - 0.5 * pw) / pw,
                   (gt[..., 1] + 0.5 * gh - rois[..., 1] - 0.5 * ph) / ph,
                   jnp.log(gw / pw), jnp.log(gh / ph)], -1)
    return t / jnp.asarray(stds, t.dtype)


def decode(deltas, rois, stds=BBOX_STDS, clip_to=None):
    """The inverse of `encode`: boxes from (..., 4) deltas (normalised by `stds`) applied to rois; with
    clip_to=(H, W) the boxes are clipped to the image."""
    d = deltas * jnp.asarray(stds, deltas.dtype)
    pw, ph = rois[..., 2] - rois[..., 0], rois[..., 3] - rois[..., 1]
    cx, cy = rois[..., 0] + 0.5 * pw + d[..., 0] * pw, rois[..., 1] + 0.5 * ph + d[..., 1] * ph
    w = pw * jnp.exp(jnp.minimum(d[..., 2], _MAX_LOG))
    h = ph * jnp.exp(jnp.minimum(d[..., 3], _MAX_LOG))
    out = jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
    if clip_to is not None:
        hh, ww = clip_to
        out = jnp.clip(out, 0, jnp.asarray([ww, hh, ww, hh], out.dtype))
    return out


def to_roi_rows(rois):
    """(N, R, 4) continuous boxes -> (N*R, 5) rows [batch_index, x1, y1, x2, y2] with inclusive corners, for
    `ops.roi_pool` / `ops.roi_spatial_pyramid_pool`."""
    n, r = rois.shape[:2]
    idx = jnp.broadcast_to(jnp.arange(n, dtype=rois.dtype)[:, None, None], (n, r, 1))
    corners = rois - jnp.asarray([0, 0, 1, 1], rois.dtype)
    return jnp.concatenate([idx, corners], -1).reshape(-1, 5)


def valid_boxes(boxes):
    return (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def sample_rois(key, proposals, gt_boxes, gt_classes, *, num_rois: int = 64, fg_fraction: float = 0.25,
                fg_iou: float = 0.5, bg_iou=(0.1, 0.5), with_gt: bool = True):
    """Fast R-CNN's mini-batch sampling of one image (section 2.3): `num_rois` regions, up to fg_fraction of
    them foreground (IoU >= fg_iou with a ground-truth box, labelled with its class + 1), the rest background
    (IoU in [bg_iou[0], bg_iou[1]), label 0), each drawn uniformly without replacement; the ground-truth boxes
    are candidates too (as in the reference roidb). Slots that find no candidate get weight 0.

    Args: proposals (P, 4) (rows of zeros are none), gt_boxes (G, 4), gt_classes (G,) with -1 padding.
    Returns: rois (num_rois, 4), labels (num_rois,) int32, targets (num_rois, 4) (`encode` of the matched
      ground truth; meaningful where label > 0), weights (num_rois,) float32 (1 sampled, 0 empty slot).
    """
    gt_ok = gt_classes >= 0
    if with_gt:
        cand = jnp.concatenate([proposals, gt_boxes], 0)
        cand_ok = jnp.concatenate([valid_boxes(proposals), gt_ok], 0)
    else:
        cand, cand_ok = proposals, valid_boxes(proposals)
    iou = jnp.where(gt_ok[None], box_iou(cand[:, None], gt_boxes[None]), -1.0)
    max_iou, match = jnp.max(iou, 1), jnp.argmax(iou, 1)
    fg = cand_ok & (max_iou >= fg_iou)
    bg = cand_ok & (max_iou >= bg_iou[0]) & (max_iou < bg_iou[1])
    u = jax.random.uniform(key, (cand.shape[0],))
    fg_rank = jnp.argsort(jnp.argsort(jnp.where(fg, u, 2.0)))
    chosen_fg = fg & (fg_rank < int(round(fg_fraction * num_rois)))
    score = jnp.where(chosen_fg, 2.0 + u, jnp.where(bg, 1.0 + u, -1.0))
    if cand.shape[0] < num_rois:  # fewer candidates than slots: pad with empty ones
        pad = num_rois - cand.shape[0]
        score = jnp.concatenate([score, jnp.full((pad,), -2.0)])
        cand = jnp.concatenate([cand, jnp.zeros((pad, 4), cand.dtype)])
        match = jnp.concatenate([match, jnp.zeros((pad,), match.dtype)])
    top, idx = jax.lax.top_k(score, num_rois)
    weights = (top > 0).astype(jnp.float32)
    labels = jnp.where(top >= 2.0, gt_classes[match[idx]] + 1, 0).astype(jnp.int32)
    rois = cand[idx]
    rois = jnp.where(weights[:, None] > 0, rois, jnp.asarray([0, 0, 1, 1], rois.dtype))  # harmless dummies
    targets = encode(gt_boxes[match[idx]], rois)
    return rois, labels, targets, weights


def target_stats(proposals, gt_boxes, gt_classes, *, fg_iou: float = 0.5):
    """Fast R-CNN's normalisation of the box-regression targets (its roidb's add_bbox_regression_targets,
    class-agnostic here): the mean and standard deviation over a training set of the unnormalised `encode`
    targets of every candidate (proposal or ground-truth box, as `sample_rois` draws them) with IoU >= fg_iou
    to a ground-truth box. proposals (N, P, 4), gt_boxes (N, G, 4), gt_classes (N, G) with -1 padding, as the
    detection datasets' labels. -> (mean (4,), std (4,)) as tuples of floats."""
    fg, t = _candidate_targets(jnp.asarray(proposals, jnp.float32), jnp.asarray(gt_boxes, jnp.float32),
                               jnp.asarray(gt_classes), fg_iou)
    t = np.asarray(t, np.float64)[np.asarray(fg)]
    if not len(t):
        raise ValueError(f"target_stats: no candidate has IoU >= {fg_iou} with a ground-truth box; pass the "
                         "training split's labels (proposals, boxes, classes).")
    return tuple(float(v) for v in t.mean(0)), tuple(float(v) for v in t.std(0))


@jax.jit
def _candidate_targets(proposals, gt_boxes, gt_classes, fg_iou):
    """(fg (N, P + G) bool, targets (N, P + G, 4)): every image's candidates (its proposals, then its ground
    truth), which of them are foreground and their unnormalised targets to the best-matching box."""
    cand = jnp.concatenate([proposals, gt_boxes], 1)
    iou = box_iou(cand[:, :, None], gt_boxes[:, None])  # (N, P + G, G)
    iou = jnp.where((gt_classes >= 0)[:, None], iou, -1.0)  # padding is no ground truth
    match = jnp.argmax(iou, -1)
    fg = valid_boxes(cand) & (jnp.max(iou, -1) >= fg_iou)
    matched = jnp.take_along_axis(gt_boxes, match[..., None], 1)
    return fg, encode(matched, cand, stds=(1.0, 1.0, 1.0, 1.0))


def flip_boxes(boxes, width):
    """Boxes (..., 4) of an image `width` pixels wide mirrored left-right: x1' = W - x2, x2' = W - x1; boxes
    that are not valid (padding) stay as they are."""
    flipped = jnp.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], -1)
    return jnp.where(valid_boxes(boxes)[..., None], flipped, boxes)


def smooth_l1(x, beta: float = 1.0):
    """Fast R-CNN's smooth L1 (eq. 3): 0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta (beta = 1)."""
    ax = jnp.abs(x)
    return jnp.where(ax < beta, 0.5 * x * x / beta, ax - 0.5 * beta)


def detections(scores, boxes, valid, *, max_detections: int = 100, nms_iou: float = 0.3, pre_nms: int = 300):
    """Per-class detections of one image from per-region class scores.

    Args:
      scores: (R, K) scores of the K object classes (no background column) for R regions.
      boxes: (R, K, 4) the class-specific boxes of each region (or (R, 4): the same box for every class).
      valid: (R,) which regions exist.
    Returns dict of boxes (M, 4), scores (M,), classes (M,) int32 in 0..K-1 and keep (M,) bool, M =
      max_detections: the pre_nms best (region, class) pairs, then per-class greedy NMS at nms_iou (Fast
      R-CNN's test-time 0.3), the max_detections best kept pairs first.
    """
    r, k = scores.shape
    if boxes.ndim == 2:
        boxes = jnp.broadcast_to(boxes[:, None], (r, k, 4))
    flat = jnp.where(valid[:, None], scores, -jnp.inf).reshape(-1)
    m = min(pre_nms, flat.shape[0])
    top, idx = jax.lax.top_k(flat, m)
    cls = (idx % k).astype(jnp.int32)
    bx = boxes.reshape(-1, 4)[idx]
    keep = nms(bx, top, nms_iou, -jnp.inf, cls) & jnp.isfinite(top)
    order = jnp.argsort(jnp.where(keep, -top, jnp.inf))[:max_detections]  # kept first, best first
    out = {"boxes": bx[order], "scores": top[order], "classes": cls[order], "keep": keep[order]}
    if m < max_detections:
        pad = max_detections - m
        out = {"boxes": jnp.pad(out["boxes"], ((0, pad), (0, 0))), "scores": jnp.pad(out["scores"], (0, pad)),
               "classes": jnp.pad(out["classes"], (0, pad)), "keep": jnp.pad(out["keep"], (0, pad))}
    return out
