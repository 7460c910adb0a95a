"""ResNet-50 on ImageNet (ILSVRC-2012), data-parallel over a device mesh:
SGD with Nesterov momentum, linear-scaling learning rate 0.1 x batch/256,
5-epoch warm-up then cosine, weight decay 1e-4, label smoothing 0.1, bf16.

Needs `imagenet2012` prepared in array_record format in the TFDS data dir
(or any image folder prepared by scripts/prepare_data.py, with
--config.dataset=NAME): the engine streams it through the input pipeline,
Inception's random-resized crop to 224 and a flip in training, resize to 256
and the centre 224 in evaluation. Meant for accelerators and several hosts
(see README, Training).
"""

from jaxcnn.train.config import base_config

EPOCH = 1_281_167  # ILSVRC-2012 training images


def get_config():
    c = base_config()
    c.dataset = "imagenet2012"
    c.eval_split = "validation"
    c.num_classes = 1000
    c.model.name = "resnet50"
    c.preprocess.mean = (0.485, 0.456, 0.406)  # ImageNet channel statistics
    c.preprocess.std = (0.229, 0.224, 0.225)
    c.preprocess.flip = True
    c.preprocess.image_size = 224
    c.batch_size = 1024
    c.eval_batch_size = 1024
    c.optimizer.name = "sgd"
    c.optimizer.nesterov = True
    c.optimizer.learning_rate = 0.1 * c.batch_size / 256
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 5 * EPOCH // c.batch_size
    c.label_smoothing = 0.1
    c.mixed_precision = True
    c.parallel = "mesh"
    c.num_steps = 90 * EPOCH // c.batch_size
    c.eval_every = EPOCH // c.batch_size
    c.checkpoint_every = EPOCH // c.batch_size
    return c
