"""The packaged config jaxcnn/configs/default.py (`--config default` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.default import get_config  # noqa: F401
