"""default.py with a validation split: trains on 90% of Fashion-MNIST's
training set, watches the other 10% during training (eval_accuracy) and
scores the test set once at the end (test_accuracy).

A separate file because default.py's figures in the README (0.904 test
accuracy after 2,000 steps) were measured training on all 60,000 images, and
tests run default.py expecting its whole training split.
"""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.train_split = "train[:90%]"  # 54,000 images
    c.eval_split = "train[90%:]"  # 6,000: the validation split, watched every eval_every steps
    c.test_split = "test"  # 10,000: scored once, at the end
    c.num_steps = 2000  # 4.7 epochs of 54,000 at batch 128
    c.batch_size = 128
    c.eval_every = 500
    c.checkpoint_every = 500
    return c
