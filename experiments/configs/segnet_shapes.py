"""SegNet (three stages) on synthetic shapes: per-pixel classes background,
circle, square, triangle on 32x32 noisy canvases (jaxcnn.data.shapes), Adam
with a cosine schedule. experiments/segmentation/run.py trains it and draws
predictions; scripts/train.py runs it as any other config."""

from jaxcnn.train import base_config


def get_config():
    c = base_config()
    c.task = "segmentation"
    c.dataset = "synthetic_shapes"
    c.synthetic_shape = (32, 32, 3)
    c.synthetic_size = 8192
    c.model.name = "segnet_small"
    c.model.num_classes = 4
    c.preprocess.mean, c.preprocess.std = (0.0,), (1.0,)  # the canvases are already floats around [0, 1]
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.warmup_steps = 0
    c.optimizer.weight_decay = 0.0
    c.batch_size = 32
    c.eval_batch_size = 256
    c.num_steps = 1500
    c.eval_every = 500
    c.checkpoint_every = 250
    c.parallel = "none"
    return c
