"""The packaged config jaxcnn/configs/keras_cifar_cnn.py (`--config keras_cifar_cnn` names it without a path);
this file keeps its
path working."""

from jaxcnn.configs.keras_cifar_cnn import get_config  # noqa: F401
