"""Pretrained weights: torchvision state dicts and our own orbax checkpoints
as Flax variables.

    variables = jaxcnn.load_torchvision_weights("resnet50", "resnet50-0676ba61.pth")
    model = jaxcnn.create_model("resnet50")
    logits = model.apply(variables, images)          # images NHWC, normalised with IMAGENET_MEAN/STD

    variables = jaxcnn.load_checkpoint_weights("fashion_cnn_small", "runs/fmnist")   # scripts/train.py's workdir

    model, variables = jaxcnn.load_weights("runs/fmnist")   # or an exported .safetensors, a .pth, a cached name

The conversion is explicit, one rule per kind of tensor (`conversion_plan`
lists every key; see jaxcnn.pretrained.torchvision). Models with a torchvision
counterpart: alexnet_owt (torchvision's alexnet), vgg11/13/16/19 and their _bn
variants, resnet18/34/50/101/152 and densenet121/161/169/201
(TORCHVISION_MODELS). Field overrides that keep the architecture torchvision's
(num_classes, widths, conv_mode, ...) are allowed; the state dict's shapes
must then match the overridden model.

Files are read safely: `.safetensors` with the `safetensors` package, anything
else with `torch.load(path, weights_only=True)`, which refuses pickled objects
other than tensors. torch is imported only to read such a file or convert
torch tensors; it is not a dependency of jaxcnn.
"""

from jaxcnn.models import IMAGENET_MEAN, IMAGENET_STD
from jaxcnn.pretrained.checkpoint import load_checkpoint_weights
from jaxcnn.pretrained.files import read_safetensors, read_state_dict
from jaxcnn.pretrained.load import cache_dir, find_weights, load_weights
from jaxcnn.pretrained.torchvision import (
    TORCHVISION_MODELS,
    Entry,
    conversion_plan,
    load_torchvision_weights,
    torchvision_counterparts,
    torchvision_keys,
)

__all__ = [
    "Entry", "IMAGENET_MEAN", "IMAGENET_STD", "TORCHVISION_MODELS", "cache_dir", "conversion_plan", "find_weights",
    "load_checkpoint_weights", "load_torchvision_weights", "load_weights", "read_safetensors", "read_state_dict", "torchvision_counterparts",
    "torchvision_keys",
]
