"""Detection's config section, `config.detection`: its keys with their defaults and its validation.

jaxcnn.train.config composes it into base_config() (the package root registers it). Training reads the
recipe keys (the fast_rcnn and spp_net tasks: RoIs per image, flips, box-target normalisation); the `svm_` keys are read
only by R-CNN's and SPP-net's second stage (jaxcnn.detection.evaluate fits the SVMs when a workdir is
scored), so a rerun of a training run may change them (jaxcnn.train.workdir).
"""

from __future__ import annotations

import ml_collections

# Keys of this section that are open (hold anything): none.
OPEN = ()
# Keys (prefixes within the section) that a plain training run does not read.
NOT_READ_BY_TRAINING = ("svm_",)


def section() -> ml_collections.ConfigDict:
    """config.detection (tasks fast_rcnn, spp_net, rcnn; jaxcnn.detection)."""
    return ml_collections.ConfigDict({
        "rois_per_image": 64,  # Fast R-CNN's R / N: 128 RoIs over N = 2 images per step
        "flip": False,  # training images flipped left-right at random, with their boxes and proposals
        # the box-regression targets are (t - mean) / std (Fast R-CNN normalises by the training data's:
        # jaxcnn.models.detection.boxes.target_stats); the defaults are the fixed scaling of boxes.BBOX_STDS
        "box_target_mean": (0.0, 0.0, 0.0, 0.0), "box_target_std": (0.1, 0.1, 0.2, 0.2),
        # R-CNN's SVMs (appendix B; its code's LIBLINEAR settings): hinge loss, C, positives' loss weight, and
        # hard-negative mining (epochs over the negatives, keeping the margin violators) instead of every negative
        "svm_hard_negative_mining": False, "svm_hard_negative_epochs": 1, "svm_c": 1e-3, "svm_pos_weight": 2.0,
    })


def validate(config, check_number, check_items) -> None:
    """config.detection's values (the base validation has checked every key's type)."""
    d = config.detection
    check_number("detection.rois_per_image", d.rois_per_image, low=1)
    for key in ("box_target_mean", "box_target_std"):
        if len(d[key]) != 4:
            raise ValueError(f"config.detection.{key} needs 4 values (t_x, t_y, t_w, t_h), got {tuple(d[key])}; "
                             "e.g. (0.0, 0.0, 0.0, 0.0) for the mean, (0.1, 0.1, 0.2, 0.2) for the std.")
    check_items("detection.box_target_mean", d.box_target_mean, float, example=(0.0, 0.0, 0.0, 0.0))
    check_items("detection.box_target_std", d.box_target_std, float, low=0, low_open=True,
                example=(0.1, 0.1, 0.2, 0.2))
    check_number("detection.svm_hard_negative_epochs", d.svm_hard_negative_epochs, low=1)
    check_number("detection.svm_c", d.svm_c, low=0, low_open=True)
    check_number("detection.svm_pos_weight", d.svm_pos_weight, low=0, low_open=True)
