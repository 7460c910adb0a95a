"""default.py with a validation split: trains on 90% of Fashion-MNIST's training set, watches the other 10%
during training (eval_accuracy) and scores the test set once at the end (test_accuracy). What the default
recipe is chosen on (docs/recipes.md: candidates run with --config.test_split= so the test set is not read).

A separate file because tests run default.py expecting its whole training split."""

import importlib.util
import os


def get_config():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py")
    spec = importlib.util.spec_from_file_location("default_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.train_split = "train[:90%]"  # 54,000 images
    c.eval_split = "train[90%:]"  # 6,000: the validation split, watched every eval_every steps
    c.test_split = "test"  # 10,000: scored once, at the end
    return c
