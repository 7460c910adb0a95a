"""Detection scores from the field's own tool: pycocotools' COCOeval.

    metrics = coco_map(dets, gts, num_classes=10)
    metrics["map50"], metrics["map"]          # AP at IoU 0.5 (PASCAL VOC's measure), AP at IoU .5:.95 (COCO's)

dets: per image a dict of numpy "boxes" (M, 4) x1, y1, x2, y2 pixels, "scores" (M,), "classes" (M,) in
0..num_classes-1, optionally "keep" (M,) bool. gts: per image "boxes" (G, 4), "classes" (G,) with -1 padding.
COCOeval's defaults: 101-point interpolated precision, at most 100 detections per image (maxDets), area
"all"; a class absent from the ground truth is left out of the mean (COCO's rule).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from jaxcnn._extras import require


def _coco_objects(dets, gts, num_classes: int, image_size):
    h, w = image_size
    images, annotations, results = [], [], []
    for i, g in enumerate(gts):
        images.append({"id": i, "width": int(w), "height": int(h)})
        for box, c in zip(np.asarray(g["boxes"], np.float64), np.asarray(g["classes"])):
            if c < 0:
                continue
            bw, bh = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c) + 1,
                                "bbox": [float(box[0]), float(box[1]), float(bw), float(bh)],
                                "area": float(bw * bh), "iscrowd": 0})
    for i, d in enumerate(dets):
        keep = np.asarray(d.get("keep", np.ones(len(d["scores"]), bool)), bool)
        for box, s, c in zip(np.asarray(d["boxes"], np.float64)[keep], np.asarray(d["scores"])[keep],
                             np.asarray(d["classes"])[keep]):
            results.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": cats}, results


def coco_map(dets, gts, *, num_classes: int, image_size=(64, 64)) -> dict:
    """{"map50", "map", "map75", "ap50_per_class" (list, None where a class has no ground truth),
    "num_images", "num_detections"} from pycocotools' COCOeval (bbox)."""
    require("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(dets) != len(gts):
        raise ValueError(f"{len(dets)} images of detections for {len(gts)} of ground truth")
    gt_json, results = _coco_objects(dets, gts, num_classes, image_size)
    out = {"num_images": len(gts), "num_detections": len(results)}
    if not results or not gt_json["annotations"]:
        return {**out, "map50": 0.0, "map": 0.0, "map75": 0.0, "ap50_per_class": [None] * num_classes}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_json
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # (T iou, R recall, K classes, A areas, M maxDets)
    per_class = []
    for k in range(prec.shape[2]):
        p = prec[0, :, k, 0, -1]
        per_class.append(float(p[p > -1].mean()) if (p > -1).any() else None)
    return {**out, "map50": float(ev.stats[1]), "map": float(ev.stats[0]), "map75": float(ev.stats[2]),
            "ap50_per_class": per_class}
