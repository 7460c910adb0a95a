#!/usr/bin/env python
"""Train a registry model: the main job of jaxcnn.

The command is jaxcnn.commands.train (installed as `jaxcnn-train`); `python scripts/train.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
