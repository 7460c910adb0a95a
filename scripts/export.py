#!/usr/bin/env python
"""Export a training run's model for others: safetensors with a model card, or StableHLO.

The command is jaxcnn.commands.export (installed as `jaxcnn-export`); `python scripts/export.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
