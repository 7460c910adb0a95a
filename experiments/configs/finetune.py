"""Fine-tuning (scripts/finetune.py): the half-width FashionCNN trained by
experiments/configs/default.py, given a new classifier and 100 labelled
images per class: 300 steps of the head alone (backbone and BatchNorm
statistics frozen), then 300 steps of every weight at a 10x smaller rate.

    python scripts/train.py --config experiments/configs/default.py --workdir runs/default
    python scripts/finetune.py --config experiments/configs/finetune.py --workdir runs/ft \
        --config.finetune.path=runs/default

For torchvision weights: --config.finetune.source=torchvision --config.finetune.path=FILE.pth
--config.model.name=resnet18 (and an RGB dataset, or --config.preprocess.to_rgb=True).
"""

from jaxcnn.train import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.finetune.source = "checkpoint"
    c.finetune.path = ""  # the scripts/train.py --workdir to start from
    c.finetune.pretrained_num_classes = 10
    c.train_examples_per_class = 100
    c.finetune.head_steps = 300
    c.finetune.head_learning_rate = 1e-2
    c.finetune.full_steps = 300
    c.finetune.full_learning_rate = 1e-3
    c.optimizer.name = "adamw"
    c.optimizer.schedule = "cosine"
    c.optimizer.warmup_steps = 0
    c.batch_size = 50
    c.parallel = "none"
    c.eval_every = 0
    return c
