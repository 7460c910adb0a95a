"""SPP-net (He et al. 2014, section 4) as a detector on the garment canvases: the CNN runs once per image and
each selective-search window of its stride-8 feature map is pooled by the paper's spatial pyramid {6x6, 3x3,
2x2, 1x1} (50 bins; He et al.'s window ceil(a/n), stride floor(a/n); ops.roi_spatial_pyramid_pool), the
window's corners mapped to cells as the paper's appendix (floor(x/S) + 1, ceil(x/S) - 1, offset to this trunk's
receptive-field centres; the former pyramid {1, 2, 4} and Fast R-CNN's rounding: model.spp_levels=(1, 2, 4),
model.spp_corners="round"), then fc6, fc7 (128) and a
softmax, fine-tuned with Fast R-CNN's sampling (25% foreground at IoU >= 0.5, background in [0.1, 0.5));
then, as in the paper, per-class linear SVMs on fc7 and box regressors on the pooled features
(jaxcnn.detection.rcnn, run by scripts/evaluate.py). Same trunk and data as fast_rcnn.py; scaled down the same
way (the paper's conv layers were ImageNet-pretrained and frozen; here they are trained from scratch with
the rest, there being no pretraining).

    python scripts/train.py --config experiments/configs/spp_net.py --workdir runs/detection/spp_net/seed0
    python scripts/evaluate.py --workdir runs/detection/spp_net/seed0        # SVMs + box regression, mAP
"""

from jaxcnn.train import base_config

TRUNK = dict(stage_sizes=(1, 1, 1, 1), widths=(16, 32, 32, 64), hidden=128, roi_size=4, spatial_scale=0.125,
             in_channels=1, num_classes=11, dropout_rate=0.0, region_pool="spp", spp_levels=(6, 3, 2, 1),
             spp_corners="he")


def get_config():
    c = base_config()
    c.task = "spp_net"
    c.dataset = "fashion_mnist_detection_ss"
    c.train_split = "train[:3000]"
    c.eval_split = "test"
    c.model.name = "fast_rcnn"
    c.model.update(TRUNK)
    c.preprocess.mean, c.preprocess.std = (0.25,), (0.25,)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 100
    c.batch_size = 4
    c.eval_batch_size = 100
    c.num_steps = 12000  # 16 epochs of the 3,000 canvases, as Fast R-CNN's 40k iterations x 2 images on VOC07's 5k
    c.log_every = 200
    c.eval_every = 0
    c.checkpoint_every = 2000
    c.parallel = "none"
    return c
