"""Default: FashionCNN (half width) on offline Fashion-MNIST, one-cycle AdamW, EMA weights and label smoothing
(docs/recipes.md): about a minute on a CPU. Chosen on the validation split (default_validation.py), seed 0: the
recipe at 2,000 steps gave 0.918 validation accuracy against 0.911 for the previous default (warm-up + cosine at
2e-3, no EMA, no smoothing); with the steps cheaper (native kernels, 2x2 pools routed to the faster path) 3,400
steps fit the minute and give 0.9287 (C5 in docs/recipes.md; 3,200: 0.9267, 3,600: 0.9285 in 62 s)."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.num_steps = 3400  # 7.3 epochs of 60,000 at batch 128
    c.batch_size = 128
    c.optimizer.schedule = "onecycle"
    c.optimizer.learning_rate = 4e-3
    c.optimizer.warmup_steps, c.optimizer.warmup_fraction = 0, 0.25  # a quarter of the run rising
    c.ema_decay = 0.995
    c.label_smoothing = 0.1
    c.eval_every = 1700
    c.checkpoint_every = 1700
    return c
