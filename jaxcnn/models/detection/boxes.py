"""Boxes: IoU and non-max suppression. Pure and jit-able (static shapes).

Boxes are (x1, y1, x2, y2) corners unless said otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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
