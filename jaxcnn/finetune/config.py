"""Fine-tuning's config section, `config.finetune`: its keys with their defaults and its validation.

jaxcnn.train.config composes it into base_config() (the package root registers it); a plain training run ignores it.
"""

from __future__ import annotations

import ml_collections

from jaxcnn._validation import check_choice

FINETUNE_SOURCES = ("none", "checkpoint", "torchvision")
# Keys of this section that are open (hold anything): none.
OPEN = ()


def section() -> ml_collections.ConfigDict:
    """config.finetune (scripts/finetune.py, jaxcnn.finetune): phases over the engine on one workdir."""
    return ml_collections.ConfigDict({
        "source": "none",  # "checkpoint" (a scripts/train.py workdir), "torchvision" (a state-dict file), "none"
        "path": "",  # the weights file or the training workdir
        "pretrained_num_classes": 0,  # classes of the pretrained classifier; 0 = the registry default
        "head_steps": 300,  # phase 1: the new classifier alone, the backbone (and its BatchNorm) frozen
        "head_learning_rate": 1e-2,
        "full_steps": 300,  # phase 2: every weight; 0 = stop after the head
        "full_learning_rate": 1e-3,
        "train_layers": (),  # phase 2 trains only the head and these top-level layers (BatchNorm frozen); () = all
    })


def validate(config, check_number, check_items) -> None:
    """config.finetune's values (the base validation has checked every key's type)."""
    ft = config.finetune
    check_choice("config.finetune.source", ft.source, FINETUNE_SOURCES)
    for key in ("head_steps", "full_steps", "pretrained_num_classes"):
        check_number(f"finetune.{key}", ft[key], low=0)
    for key in ("head_learning_rate", "full_learning_rate"):
        check_number(f"finetune.{key}", ft[key], low=0, low_open=True)
