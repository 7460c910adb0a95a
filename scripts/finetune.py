#!/usr/bin/env python
"""Fine-tune a pretrained registry model on a new task: a new classifier for
the dataset's classes, trained with the backbone frozen (BatchNorm statistics
too), then optionally every weight at a smaller learning rate.

    # from our own training run (scripts/train.py --workdir runs/fmnist):
    python scripts/finetune.py --config experiments/configs/finetune.py --workdir runs/ft \
        --config.finetune.path=runs/fmnist

    # from torchvision weights (a state-dict file, read with weights_only=True or as safetensors):
    python scripts/finetune.py --config experiments/configs/finetune.py --workdir runs/ft_r18 \
        --config.model.name=resnet18 --config.finetune.source=torchvision \
        --config.finetune.path=resnet18-f37072fd.pth --config.dataset=cifar10 ...

Run the same command again after a crash and it resumes from the latest
checkpoint in --workdir (every config.checkpoint_every steps and at the end of
each phase).

Exit status: 0 done, 2 bad configuration or input.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (experiments/configs/finetune.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics.jsonl and the final checkpoint.")


def _fail(msg: str, code: int = 2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; overrides look like --config.KEY=VALUE.")
    if _CONFIG.value is None:
        _fail("--config is required, e.g. --config experiments/configs/finetune.py")
    if not _WORKDIR.value:
        _fail("--workdir is required, e.g. --workdir runs/ft")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from jaxcnn.finetune import run_finetune

    try:
        final = run_finetune(_CONFIG.value, _WORKDIR.value)
    except (ValueError, TypeError, FileNotFoundError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    print(f"{final['phase']} phase, step {final['step']}: test accuracy {final['eval_accuracy']:.4f} on "
          f"{final['num_classes']} classes; metrics in {os.path.join(_WORKDIR.value, 'metrics.jsonl')}")


if __name__ == "__main__":
    try:
        rest = flags.FLAGS(sys.argv)  # parse now so that a bad flag is one line and exit status 2
    except flags.Error as e:
        _fail(str(e))
    app.run(main, argv=rest, flags_parser=lambda a: a)
