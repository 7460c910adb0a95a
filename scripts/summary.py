#!/usr/bin/env python
"""Print the Keras-style layer table of a registered model.

The command is jaxcnn.commands.summary (installed as `jaxcnn-summary`); `python scripts/summary.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.summary import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
