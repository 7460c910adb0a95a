#!/usr/bin/env python
"""Fine-tune a pretrained registry model on a new task: a new classifier for

The command is jaxcnn.commands.finetune (installed as `jaxcnn-finetune`); `python scripts/finetune.py --help`
says everything. This file runs it from a checkout without installing jaxcnn.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.commands.finetune import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
