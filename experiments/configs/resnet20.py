"""The packaged config jaxcnn/configs/resnet20.py (`--config resnet20` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.resnet20 import get_config  # noqa: F401
