"""YOLOv1's loss (Redmon et al. 2016, eq. 3) and the decoding of its S x S x
(5B + C) output grid into scored boxes with non-max suppression. Pure and
jit-able (static shapes). Boxes are (x1, y1, x2, y2) corners in image units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn.models.detection.boxes import box_iou, nms

def _split(pred, num_boxes):
    n, s, s2, d = pred.shape
    if s != s2 or d <= 5 * num_boxes:
        raise ValueError(f"pred must be (N, S, S, B*5 + C) with B={num_boxes}, got {pred.shape}")
    boxes = pred[..., :5 * num_boxes].reshape(n, s, s, num_boxes, 5)
    return boxes, pred[..., 5 * num_boxes:]


def _cell_to_corners(xy, wh, s):
    """Cell-relative centres (…, S, S, [B,] 2) and image-relative sizes -> image-fraction corners."""
    grid = jnp.arange(s, dtype=xy.dtype)
    extra = xy.ndim - 4  # 1 when there is a box axis
    shape = (1, s, 1) + (1,) * extra
    cx = (xy[..., 0] + grid.reshape(1, 1, s, *(1,) * extra)) / s
    cy = (xy[..., 1] + grid.reshape(shape)) / s
    return jnp.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)


def yolo_loss_terms(pred, target, num_boxes: int = 2, lambda_coord: float = 5.0,
                    lambda_noobj: float = 0.5, rescore: bool = True):
    """The four terms of YOLOv1's sum-squared loss (paper eq. 3), each summed over
    the grid and averaged over the batch.

    Args:
      pred: (N, S, S, B*5 + C) network output; per cell B boxes of
        (x, y, sqrt_w, sqrt_h, conf) then C class scores.
      target: (N, S, S, 5 + C) per cell (x, y, w, h, obj, one-hot classes):
        x, y the object's centre offset inside the cell, w, h its size as image
        fractions, obj 1 where an object's centre falls in the cell, else 0.
      rescore: the confidence target of the responsible box is its IoU with
        the ground truth (the paper); False uses 1.

    The responsible predictor of a cell with an object is the box with the
    highest IoU with the ground truth (first on ties). Terms: coord =
    lambda_coord * sum resp [(x-x^)^2 + (y-y^)^2 + (sqrt_w - sqrt(w^))^2 +
    (sqrt_h - sqrt(h^))^2]; obj = sum resp (conf - target)^2; noobj =
    lambda_noobj * sum (1 - resp) conf^2 over all other boxes; cls = sum over
    cells with objects of sum_c (p_c - p^_c)^2.
    """
    boxes, cls = _split(pred, num_boxes)
    n, s = pred.shape[:2]
    if target.shape != (n, s, s, 5 + cls.shape[-1]):
        raise ValueError(f"target must be (N, S, S, 5 + C) = {(n, s, s, 5 + cls.shape[-1])}, got {target.shape}")
    obj = target[..., 4]
    t_box = _cell_to_corners(target[..., 0:2], target[..., 2:4], s)             # (N, S, S, 4)
    p_box = _cell_to_corners(boxes[..., 0:2], jnp.square(boxes[..., 2:4]), s)   # (N, S, S, B, 4)
    iou = jax.lax.stop_gradient(box_iou(p_box, t_box[..., None, :]))            # (N, S, S, B)
    resp = jax.nn.one_hot(jnp.argmax(iou, -1), num_boxes, dtype=pred.dtype) * obj[..., None]
    t_sqrt = jnp.sqrt(jnp.clip(target[..., 2:4], 0))
    coord = (jnp.sum(jnp.square(boxes[..., 0:2] - target[..., None, 0:2]), -1)
             + jnp.sum(jnp.square(boxes[..., 2:4] - t_sqrt[..., None, :]), -1))
    conf = boxes[..., 4]
    conf_target = iou if rescore else jnp.ones_like(iou)
    terms = {
        "coord": lambda_coord * jnp.sum(resp * coord),
        "obj": jnp.sum(resp * jnp.square(conf - conf_target)),
        "noobj": lambda_noobj * jnp.sum((1 - resp) * jnp.square(conf)),
        "cls": jnp.sum(obj[..., None] * jnp.square(cls - target[..., 5:])),
    }
    return {k: v / n for k, v in terms.items()}


def yolo_loss(pred, target, num_boxes: int = 2, lambda_coord: float = 5.0, lambda_noobj: float = 0.5,
              rescore: bool = True):
    """YOLOv1's loss: the sum of `yolo_loss_terms` (see there for the formats)."""
    return sum(yolo_loss_terms(pred, target, num_boxes, lambda_coord, lambda_noobj, rescore).values())


def decode_yolo(pred, num_boxes: int = 2, score_threshold: float = 0.2, iou_threshold: float = 0.5):
    """Turn YOLOv1 output grids into detections.

    Args:
      pred: (N, S, S, B*5 + C), the layout of `jaxcnn.models.detection.YOLOv1`.
    Returns:
      dict of boxes (N, S*S*B, 4) corners as image fractions, scores (N, S*S*B)
      = confidence * the best class score (the paper's class-specific
      confidence), classes (N, S*S*B) and keep (N, S*S*B) bool after per-class
      non-max suppression and the score threshold.
    """
    boxes, cls = _split(pred, num_boxes)
    n, s = pred.shape[:2]
    corners = _cell_to_corners(boxes[..., 0:2], jnp.square(boxes[..., 2:4]), s).reshape(n, -1, 4)
    best = jnp.argmax(cls, -1)
    scores = (boxes[..., 4] * jnp.max(cls, -1)[..., None]).reshape(n, -1)
    classes = jnp.broadcast_to(best[..., None], boxes.shape[:-1]).reshape(n, -1)
    keep = jax.vmap(lambda b, sc, c: nms(b, sc, iou_threshold, score_threshold, c))(corners, scores, classes)
    return {"boxes": corners, "scores": scores, "classes": classes, "keep": keep}
