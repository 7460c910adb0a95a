"""SegNet (Badrinarayanan et al. 2017) on the garment canvases' masks (fashion_mnist_segmentation: 11
classes), through the engine with task "segmentation": a five-stage encoder (3x3 convolution, BatchNorm,
ReLU, 2x2 max pooling that keeps its switches) and the mirrored decoder that unpools with them. Scaled down
as the FCN configs: one convolution per stage (not VGG16's 13) of widths 16-32-32-64-64 (not 64-...-512),
trained from scratch, the same budget and optimiser as fcn*.py.

    python scripts/train.py --config experiments/configs/segnet.py --workdir runs/segmentation/segnet/seed0
"""

from jaxcnn.train import base_config


def get_config():
    c = base_config()
    c.task = "segmentation"
    c.dataset = "fashion_mnist_segmentation"
    c.model.name = "segnet"
    c.model.update(dict(stage_sizes=(1, 1, 1, 1, 1), widths=(16, 32, 32, 64, 64), num_classes=11, in_channels=1))
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
