"""R-CNN (Girshick et al. 2014) on the garment canvases. Stage 1, through the engine (this config): fine-tune
the CNN as a classifier of warped regions (fashion_mnist_rcnn_crops: every selective-search proposal and
ground-truth box of the first 3,000 training canvases warped to 32x32 with 2 px of context, labelled
1 + class at IoU >= 0.5 else background, 25% foreground). Stages 2-3, scripts/evaluate.py
(jaxcnn.detection.rcnn): per-class linear SVMs on fc7 features (positives: ground truth; negatives:
proposals under IoU 0.3), trained as the paper with hard-negative mining over the training images and
R-CNN's hinge loss at C = 0.001 (positives weighted 2, bias feature 10: its LIBLINEAR settings), and box
regressors on the pooled conv features (IoU >= 0.6), then detection of the test split: one CNN pass per
proposal. The network is fast_rcnn.py's (the same trunk and fc layers; a
32x32 crop is one whole-image region), trained from scratch (no ImageNet), so the three region methods
differ only in where the region is cut out.

    python scripts/train.py --config experiments/configs/rcnn.py --workdir runs/detection/rcnn/seed0
    python scripts/evaluate.py --workdir runs/detection/rcnn/seed0
"""

from jaxcnn.train import base_config

TRUNK = dict(stage_sizes=(1, 1, 1, 1), widths=(16, 32, 32, 64), hidden=128, roi_size=4, spatial_scale=0.125,
             in_channels=1, num_classes=11, dropout_rate=0.0)


def get_config():
    c = base_config()
    c.task = "rcnn"
    c.dataset = "fashion_mnist_rcnn_crops"
    c.train_split = "train[:3000]"
    c.eval_split = "test[:500]"  # crop classification accuracy while training; detection: scripts/evaluate.py
    c.model.name = "fast_rcnn"
    c.model.update(TRUNK)
    c.preprocess.mean, c.preprocess.std = (0.25,), (0.25,)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 100
    c.batch_size = 64
    c.eval_batch_size = 1000
    c.num_steps = 12000  # 768k warped regions, 3.4 passes over the ~225k regions of the 3,000 canvases
    c.log_every = 200
    c.eval_every = 0
    c.checkpoint_every = 2000
    c.parallel = "none"
    c.detection.svm_hard_negative_mining = True  # R-CNN's second stage (sec. 2.3); one epoch, as the paper found enough
    c.detection.svm_c = 1e-3
    return c
