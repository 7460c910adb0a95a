"""default.py with a validation split: trains on 90% of Fashion-MNIST's training set, watches the other 10%
during training (eval_accuracy) and scores the test set once at the end (test_accuracy). What the default
recipe is chosen on (docs/recipes.md: candidates run with --config.test_split= so the test set is not read).

A separate file because tests run default.py expecting its whole training split."""

from jaxcnn.configs import default


def get_config():
    c = default.get_config()
    c.train_split = "train[:90%]"  # 54,000 images
    c.eval_split = "train[90%:]"  # 6,000: the validation split, watched every eval_every steps
    c.test_split = "test"  # 10,000: scored once, at the end
    return c
