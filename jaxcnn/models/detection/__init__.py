"""Detection: the YOLOv1 model, its loss and decoding, the SPP-net and Fast
R-CNN heads, and the box utilities they share (IoU, non-max suppression).
Importing this package registers yolov1, yolov1_tiny, spp_net and fast_rcnn."""

from jaxcnn.models.detection import spp, yolo  # noqa: F401  (register the models)
from jaxcnn.models.detection.boxes import box_iou, nms
from jaxcnn.models.detection.spp import FastRCNN, SPPNet, truncated_svd_params
from jaxcnn.models.detection.yolo import YOLOv1
from jaxcnn.models.detection.yolo_loss import decode_yolo, yolo_loss, yolo_loss_terms

__all__ = ["FastRCNN", "SPPNet", "YOLOv1", "box_iou", "decode_yolo", "nms", "truncated_svd_params", "yolo_loss",
           "yolo_loss_terms"]
