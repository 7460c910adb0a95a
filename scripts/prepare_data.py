#!/usr/bin/env python
"""Prepare a dataset once, without TensorFlow, as TFDS array_record files that

The command is jaxcnn.commands.prepare_data (installed as `jaxcnn-prepare-data`); `python scripts/prepare_data.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.prepare_data import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
