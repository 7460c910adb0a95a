"""jaxcnn: classic convolutional networks in JAX/Flax.

    import jax, jaxcnn
    model = jaxcnn.create_model("resnet20", num_classes=10)
    variables = model.init(jax.random.key(0), jax.numpy.zeros((1, 32, 32, 3)))
    jaxcnn.count_params(variables)  # 269,722

Images are NHWC and kernels HWIO everywhere.

Importing jaxcnn before JAX starts adds jaxcnn's XLA:CPU flags to XLA_FLAGS
(faster CPU training; see jaxcnn.runtime, JAXCNN_XLA_CPU_FLAGS=0 to opt out).
"""

from jaxcnn.runtime import configure_xla_cpu, xla_cpu_status

configure_xla_cpu()

from jaxcnn import ops  # noqa: E402  (after the XLA flags)
from jaxcnn.models import create_model, default_input_shape, list_models  # noqa: E402
from jaxcnn.params import count_params  # noqa: E402
from jaxcnn.convolutionalize import convolutionalize  # noqa: E402
from jaxcnn.pretrained import load_checkpoint_weights, load_torchvision_weights  # noqa: E402
from jaxcnn.summary import Summary, summary  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "configure_xla_cpu",
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
    "xla_cpu_status",
]
