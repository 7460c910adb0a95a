"""Detection as an application over the training engine: R-CNN, SPP-net, Fast R-CNN and YOLOv1 on the
garment canvases (jaxcnn.data.canvases), scored with pycocotools.

* boxes.py   box coding (R-CNN's deltas), Fast R-CNN's RoI sampling, smooth L1, per-class NMS detections
* tasks.py   the engine tasks "fast_rcnn", "spp_net", "rcnn", "yolo" (registered on import)
* coco.py    mAP@0.5 and mAP@[.5:.95] through pycocotools' COCOeval
* rcnn.py    R-CNN's and SPP-net's second stage: per-class linear SVMs and box regressors on the fine-tuned
             network's features, and their detection of a split
* evaluate.py  a workdir's detections (or segmentation / classification metrics) on a split, timed

Importing jaxcnn.detection registers the tasks (scripts/train.py and scripts/evaluate.py do).
"""

from jaxcnn.detection import boxes, coco, tasks
from jaxcnn.detection.boxes import decode, detections, encode, sample_rois, smooth_l1
from jaxcnn.detection.coco import coco_map
from jaxcnn.detection.tasks import FastRCNNTask, RCNNTask, SPPNetTask, YOLOTask, yolo_targets

tasks.register()

__all__ = ["FastRCNNTask", "RCNNTask", "SPPNetTask", "YOLOTask", "boxes", "coco", "coco_map", "decode",
           "detections", "encode", "sample_rois", "smooth_l1", "tasks", "yolo_targets"]
