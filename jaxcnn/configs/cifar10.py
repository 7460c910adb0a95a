"""ResNet-20 on CIFAR-10 as in He et al. 2016 (sec. 4.2): 64k iterations at
batch 128, SGD 0.1 / momentum 0.9 / weight decay 1e-4, x0.1 at 32k and 48k,
4-pixel padded crops and flips, per-channel normalisation.

Needs CIFAR-10 prepared once in array_record format in the TFDS data dir:
    tfds build cifar10 --file_format=array_record   (on a machine with the network)
"""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.dataset = "cifar10"
    c.model.name = "resnet20"
    c.preprocess.mean = (0.4914, 0.4822, 0.4465)  # CIFAR-10 training-set channel statistics
    c.preprocess.std = (0.2470, 0.2435, 0.2616)
    c.preprocess.crop_padding = 4
    c.preprocess.flip = True
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "step"
    c.optimizer.step_boundaries = (32000, 48000)
    c.optimizer.warmup_steps = 0
    c.num_steps = 64000
    c.eval_every = 4000
    c.checkpoint_every = 4000
    return c
