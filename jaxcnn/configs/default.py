"""Default: FashionCNN (half width) on offline Fashion-MNIST, AdamW + cosine, a few minutes on a CPU."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.num_steps = 2000  # 4.3 epochs of 60,000 at batch 128
    c.batch_size = 128
    c.eval_every = 500
    c.checkpoint_every = 500
    return c
