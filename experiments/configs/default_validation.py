"""The packaged config jaxcnn/configs/default_validation.py (`--config default_validation` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.default_validation import get_config  # noqa: F401
