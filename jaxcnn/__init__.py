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

The applications plug into the engine here, by module path (jaxcnn._applications:
nothing is imported until a config is built or a task is named), so that
jaxcnn.train names none of them. `import jaxcnn` (and so `import jaxcnn.ops`)
loads ops, layers and models; jaxcnn.train, jaxcnn.data and the applications,
and the names re-exported from jaxcnn.pretrained, load on first use.
"""

import importlib as _importlib

from jaxcnn import _applications

# The applications' config sections (config.finetune, config.ablation, config.detection, in base_config()'s
# order) and the tasks an application provides, by the module that defines each.
_applications.register_section("finetune", "jaxcnn.finetune.config")
_applications.register_section("ablation", "jaxcnn.ablation.config")
_applications.register_section("detection", "jaxcnn.detection.config")
for _task in ("fast_rcnn", "spp_net", "rcnn", "yolo"):
    _applications.register_task_provider(_task, "jaxcnn.detection")
del _task

# The applications are registered above, before any other part of jaxcnn loads.
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
from jaxcnn.runtime import xla_cpu_status
from jaxcnn._version import __version__

# Names re-exported from a part that loads the engine (jaxcnn.train): imported on first use.
_LAZY = {"load_checkpoint_weights": "jaxcnn.pretrained", "load_torchvision_weights": "jaxcnn.pretrained",
         "load_weights": "jaxcnn.pretrained"}
# The subpackages `jaxcnn.NAME` reaches after a plain `import jaxcnn` (each imported on first use).
_SUBPACKAGES = ("ablation", "commands", "configs", "data", "detection", "finetune", "layers", "models", "ops",
                "pretrained", "runtime", "train")


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


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
