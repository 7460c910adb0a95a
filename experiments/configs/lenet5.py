"""The packaged config jaxcnn/configs/lenet5.py (`--config lenet5` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.lenet5 import get_config  # noqa: F401
