"""MiniVGG (two VGG stages of 3x3 convolutions with BatchNorm) on offline
Fashion-MNIST: the grey channel repeated to RGB, 28x28 input, SGD with momentum."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "minivgg"
    c.model.image_size = 28
    c.preprocess.to_rgb = True
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.05
    c.optimizer.weight_decay = 5e-4
    c.optimizer.warmup_steps = 200
    c.num_steps = 4000
    c.eval_every = 1000
    c.checkpoint_every = 1000
    return c
