#!/usr/bin/env python
"""Run one ablation: every arm x seed a run of the training engine, then the

The command is jaxcnn.commands.ablate (installed as `jaxcnn-ablate`); `python scripts/ablate.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.ablate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
