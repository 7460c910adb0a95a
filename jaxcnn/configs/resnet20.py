"""ResNet-20 (He et al. 2016, sec. 4.2) on offline Fashion-MNIST: SGD 0.1,
momentum 0.9, weight decay 1e-4, batch 128, step decay x0.1 at 50% and 75%,
random crops (padding 2) and flips."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "resnet20"
    c.preprocess.crop_padding = 2
    c.preprocess.flip = True
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "step"
    c.optimizer.step_boundaries = (0.5, 0.75)
    c.optimizer.warmup_steps = 200
    c.num_steps = 8000
    c.eval_every = 1000
    c.checkpoint_every = 1000
    return c
