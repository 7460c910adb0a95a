#!/usr/bin/env python
"""Classify image files with a trained run: the workdir's own config.json and its latest checkpoint.

The command is jaxcnn.commands.predict (installed as `jaxcnn-predict`); `python scripts/predict.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
