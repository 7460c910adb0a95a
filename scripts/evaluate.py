#!/usr/bin/env python
"""Score a training run on a split: the workdir's own config.json, its latest checkpoint.

The command is jaxcnn.commands.evaluate (installed as `jaxcnn-evaluate`); `python scripts/evaluate.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
