"""Deprecated: the box functions live in jaxcnn.models.detection.boxes (one boxes module for the models and
the detection application). This path works this release, with a DeprecationWarning."""

import warnings

from jaxcnn.models.detection.boxes import (  # noqa: F401
    BBOX_STDS,
    box_iou,
    decode,
    detections,
    encode,
    nms,
    sample_rois,
    smooth_l1,
    to_roi_rows,
    valid_boxes,
)

warnings.warn("jaxcnn.detection.boxes moved to jaxcnn.models.detection.boxes; import it from there (the old path "
              "goes in the next release).", DeprecationWarning, stacklevel=2)
