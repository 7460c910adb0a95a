"""Fine-tuning and transfer learning on top of the training engine.

    from jaxcnn.finetune import replace_head, create_finetune_state, unfreeze, run_finetune

* head.py  the new classifier (replace_head), the frozen backbone (create_finetune_state mode="head",
           FrozenBackbone) and unfreezing (unfreeze)
* run.py   run_finetune(config, workdir): the phases "head" then "full" (or "scratch") as successive runs
           of jaxcnn.train's engine on one workdir
"""

from jaxcnn.finetune.head import (
    FROZEN,
    MODES,
    TRAINABLE,
    FrozenBackbone,
    create_finetune_state,
    finetune_optimizer,
    head_name,
    param_labels,
    replace_head,
    unfreeze,
)
from jaxcnn.finetune.run import check_finetune, run_finetune
from jaxcnn.train.setup import class_subset

__all__ = [
    "FROZEN", "MODES", "TRAINABLE", "FrozenBackbone", "check_finetune", "class_subset", "create_finetune_state",
    "finetune_optimizer", "head_name", "param_labels", "replace_head", "run_finetune", "unfreeze",
]
