"""The packaged config jaxcnn/configs/vgg.py (`--config vgg` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.vgg import get_config  # noqa: F401
