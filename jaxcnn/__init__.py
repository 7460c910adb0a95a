"""jaxcnn: classic convolutional networks in JAX/Flax.

    import jax, jaxcnn
    model = jaxcnn.create_model("resnet20", num_classes=10)
    variables = model.init(jax.random.key(0), jax.numpy.zeros((1, 32, 32, 3)))
    jaxcnn.count_params(variables)  # 269,722

Images are NHWC and kernels HWIO everywhere.
"""

from jaxcnn import ops
from jaxcnn.models import create_model, default_input_shape, list_models
from jaxcnn.params import count_params
from jaxcnn.convolutionalize import convolutionalize
from jaxcnn.pretrained import load_checkpoint_weights, load_torchvision_weights
from jaxcnn.summary import Summary, summary

__version__ = "0.1.0"

__all__ = [
    "convolutionalize",
    "count_params",
    "create_model",
    "default_input_shape",
    "list_models",
    "load_checkpoint_weights",
    "load_torchvision_weights",
    "ops",
    "Summary",
    "summary",
]
