"""The Fashion-MNIST speedrun (docs/recipes.md): FashionCNN at full width (32-64-128) with every recipe switch
that paid on the validation split: one-cycle AdamW, EMA weights, label smoothing 0.1, flips and 2-pixel crops.
Trains on all 60,000 training images and scores the 10,000 test images, every 750 steps for the
accuracy-versus-time curve. Run at three seeds by `python experiments/speedrun.py`; chosen with
experiments/configs/speedrun_validation.py (the same recipe on 54,000 images, 6,000 held out)."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn"
    c.train_split, c.eval_split, c.test_split = "train", "test", ""
    c.batch_size = 128
    c.num_steps = 6000  # 12.8 epochs of 60,000
    c.optimizer.schedule = "onecycle"
    c.optimizer.learning_rate = 4e-3
    c.optimizer.warmup_steps, c.optimizer.warmup_fraction = 0, 0.25  # a quarter of the run rising
    c.ema_decay = 0.999
    c.label_smoothing = 0.1
    c.augment = "flip_crop"
    c.eval_every = 750
    c.checkpoint_every = 1500
    c.progress = False
    return c
