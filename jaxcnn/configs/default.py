"""Default: FashionCNN (half width) on offline Fashion-MNIST, one-cycle AdamW, EMA weights and label smoothing
(docs/recipes.md): about a minute on a CPU. The recipe was chosen on the validation split
(default_validation.py): 0.918 validation accuracy after 2,000 steps against 0.911 for the previous default
(warm-up + cosine at 2e-3, no EMA, no smoothing), same model and steps, seed 0."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.num_steps = 2000  # 4.3 epochs of 60,000 at batch 128
    c.batch_size = 128
    c.optimizer.schedule = "onecycle"
    c.optimizer.learning_rate = 4e-3
    c.optimizer.warmup_steps, c.optimizer.warmup_fraction = 0, 0.25  # a quarter of the run rising
    c.ema_decay = 0.995
    c.label_smoothing = 0.1
    c.eval_every = 500
    c.checkpoint_every = 500
    return c
