"""jaxcnn: classic convolutional networks in JAX/Flax.

    import jax, jaxcnn
    model = jaxcnn.create_model("resnet20", num_classes=10)
    variables = model.init(jax.random.key(0), jax.numpy.zeros((1, 32, 32, 3)))
    jaxcnn.count_params(variables)  # 269,722

Images are NHWC and kernels HWIO everywhere.

The package is layered, each layer importing only those below it:
ops -> layers -> models -> data, train -> applications (finetune, ablation,
pretrained) -> scripts. Importing jaxcnn changes no environment variable; for
jaxcnn's faster XLA:CPU settings call `jaxcnn.runtime.configure()` before JAX
starts (the scripts, the engine and the tests do).
"""

from jaxcnn import ops
from jaxcnn.models import (
    convolutionalize,
    count_params,
    create_model,
    default_input_shape,
    list_models,
    Summary,
    summary,
)
from jaxcnn.pretrained import load_checkpoint_weights, load_torchvision_weights, load_weights
from jaxcnn.runtime import xla_cpu_status
from jaxcnn._version import __version__

__all__ = [
    "convolutionalize",
    "count_params",
    "create_model",
    "default_input_shape",
    "list_models",
    "load_checkpoint_weights",
    "load_torchvision_weights",
    "load_weights",
    "ops",
    "Summary",
    "summary",
    "xla_cpu_status",
]
