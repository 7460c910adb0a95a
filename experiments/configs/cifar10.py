"""The packaged config jaxcnn/configs/cifar10.py (`--config cifar10` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.cifar10 import get_config  # noqa: F401
