"""Detection as an application over the training engine: R-CNN, SPP-net, Fast R-CNN and YOLOv1 on the
garment canvases (jaxcnn.data.canvases), scored with pycocotools.

* boxes      jaxcnn.models.detection.boxes: box coding (R-CNN's deltas), Fast R-CNN's RoI sampling, smooth L1,
             per-class NMS detections, IoU
* tasks.py   the engine tasks "fast_rcnn", "spp_net", "rcnn", "yolo" (TASKS: config.task finds them by name)
* coco.py    mAP@0.5 and mAP@[.5:.95] through pycocotools' COCOeval
* rcnn.py    R-CNN's and SPP-net's second stage: per-class linear SVMs and box regressors on the fine-tuned
             network's features, and their detection of a split
* evaluate.py  R-CNN's and SPP-net's scoring of a workdir (their second stage; WORKDIR_SCORERS), used by
             jaxcnn.train.inference.evaluate_workdir

Nothing needs importing for its side effect: jaxcnn.train.tasks loads this package the first time a config
names one of its tasks, and reads TASKS and WORKDIR_SCORERS.
"""

from jaxcnn.detection import coco, evaluate, tasks
from jaxcnn.models.detection import boxes  # the one boxes module (jaxcnn.detection.boxes is its old path)
from jaxcnn.models.detection.boxes import decode, detections, encode, sample_rois, smooth_l1
from jaxcnn.detection.coco import coco_map
from jaxcnn.detection.evaluate import score_second_stage
from jaxcnn.detection.tasks import TASKS, FastRCNNTask, RCNNTask, SPPNetTask, YOLOTask, yolo_targets

WORKDIR_SCORERS = {"rcnn": score_second_stage, "spp_net": score_second_stage}

__all__ = ["TASKS", "WORKDIR_SCORERS", "FastRCNNTask", "RCNNTask", "SPPNetTask", "YOLOTask", "boxes", "coco",
           "coco_map", "decode", "detections", "encode", "evaluate", "sample_rois", "score_second_stage",
           "smooth_l1", "tasks", "yolo_targets"]
