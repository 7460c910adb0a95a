"""The packaged config jaxcnn/configs/imagenet.py (`--config imagenet` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.imagenet import get_config  # noqa: F401
