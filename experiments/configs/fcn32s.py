"""FCN-32s (Long et al. 2015) on the garment canvases' masks (fashion_mnist_segmentation: 11 classes,
0 background, 1..10 garments), through the engine with task "segmentation" (per-pixel softmax
cross-entropy; pixel accuracy, mean IoU). The same architecture as the reference nets (VGG16's 13
convolutions in 5 stages, ceil-mode pooling, fc6/fc7 as convolutions, score layers started at zero, the 2x
upsampling layers learned from bilinear and the final one fixed bilinear, skips from pool4 (16s) and pool3
(8s), crops from the coordinate maps) scaled down for a CPU:
one 3x3 convolution per stage (not VGG16's 2-2-3-3-3) of widths 16-32-32-64-64 (not 64-128-256-512-512),
fc6/fc7 of 64 (not 4096) with a 3x3 fc6 (not 7x7),
conv1_1 padded by 17 (not 100: the smallest pad whose crops fit all three variants at 64x64), no dropout, trained from scratch (not from
ImageNet VGG16, hence He initialisation: with Flax's default a deep plain ReLU stack did not train). As the
paper, FCN-16s then starts from this run and FCN-8s from FCN-16s (config.init_from), each for the same budget.

    python scripts/train.py --config experiments/configs/fcn32s.py --workdir runs/segmentation/fcn32s/seed0
"""

from jaxcnn.train import base_config

SMALL = dict(widths=((16,), (32,), (32,), (64,), (64,)), fc_width=64, fc6_kernel=3,
             pad=17, num_classes=11, in_channels=1, dropout_rate=0.0, weight_init="he")


def get_config():
    c = base_config()
    c.task = "segmentation"
    c.dataset = "fashion_mnist_segmentation"
    c.model.name = "fcn32s"
    c.model.update(SMALL)
    c.preprocess.mean, c.preprocess.std = (0.25,), (0.25,)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 30
    c.batch_size = 16
    c.eval_batch_size = 250
    c.num_steps = 8000  # 6.4 epochs of the 20,000 training canvases (300 steps left FCN-32s at background only)
    c.log_every = 100
    c.eval_every = 0
    c.checkpoint_every = 1000
    c.parallel = "none"
    return c
