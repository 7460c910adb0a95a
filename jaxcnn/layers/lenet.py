"""The layers of LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, section II.B):
the scaled tanh, trainable sub-sampling, C3's partial connection table and the
Euclidean RBF output. Images NHWC, kernels HWIO.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax.linen.dtypes import promote_dtype

from jaxcnn import ops
from jaxcnn._validation import as_pair
from jaxcnn.layers.conv import Initializer, check_conv_mode

LECUN_TANH_A = 1.7159
LECUN_TANH_S = 2.0 / 3.0


def scaled_tanh(x):
    """LeNet-5's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3
    (LeCun et al. 1998, section II.B and appendix A): f(1) = 1, f(-1) = -1."""
    return LECUN_TANH_A * jnp.tanh(LECUN_TANH_S * x)


class ScaledTanh(nn.Module):
    """`scaled_tanh` as a layer."""

    @nn.compact
    def __call__(self, x):
        return scaled_tanh(x)


class Subsampling(nn.Module):
    """LeNet-5's trainable sub-sampling (layers S2 and S4), x: NHWC.

    "The four inputs to a unit in S2 are added, then multiplied by a trainable
    coefficient, and added to a trainable bias" (LeCun et al. 1998, II.B): a
    2x2 non-overlapping sum, one coefficient and one bias per map, so 2 * C
    parameters (S2: 12, S4: 32). The squashing function is applied by the
    model, not here.
    """

    window: int = 2
    coefficient_init: Initializer = nn.initializers.ones_init()
    bias_init: Initializer = nn.initializers.zeros_init()
    param_dtype: Any = jnp.float32
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x):
        ops.check_image(x)
        c = x.shape[-1]
        coef = self.param("coefficient", self.coefficient_init, (c,), self.param_dtype)
        bias = self.param("bias", self.bias_init, (c,), self.param_dtype)
        x, coef, bias = promote_dtype(x, coef, bias, dtype=self.dtype)
        summed = ops.avg_pool(x, self.window) * (self.window * self.window)
        return summed * coef + bias

    def macs(self, variables, out_shape) -> int:
        """One multiply per output unit, the sum being additions (for `jaxcnn.summary`)."""
        return int(np.prod(out_shape[1:]))


# Table I of LeCun et al. 1998: which S2 maps (0-5) each C3 map (0-15) sees.
# Maps 0-5 take three consecutive maps, 6-11 four consecutive, 12-14 four
# non-consecutive, 15 all six.
LENET_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class PartialConv(nn.Module):
    """A convolution in which output map j sees only the input maps `table[j]`:
    LeNet-5's layer C3 with `table=LENET_C3_TABLE` (1,516 parameters:
    6 x (3 x 25 + 1) + 9 x (4 x 25 + 1) + (6 x 25 + 1)).

    Only the connected kernels are stored. Consecutive output maps with the
    same fan-in share one HWIO parameter `kernel_{k}` of shape
    (KH, KW, fan_in, maps in the run), computed as a grouped convolution over
    the gathered input maps; `bias` has one entry per output map.
    x: NHWC; `conv_mode` as in `Conv`.
    """

    table: Any = LENET_C3_TABLE
    kernel_size: Any = 5
    padding: Any = "VALID"
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()

    def runs(self):
        """[(first output map, [input maps of each map in the run])], runs of equal fan-in."""
        runs: list = []
        for j, inputs in enumerate(self.table):
            if runs and len(runs[-1][1][0]) == len(inputs):
                runs[-1][1].append(tuple(inputs))
            else:
                runs.append((j, [tuple(inputs)]))
        return runs

    @nn.compact
    def __call__(self, x):
        check_conv_mode(self.conv_mode)
        ops.check_image(x)
        kh, kw = as_pair(self.kernel_size, "kernel_size")
        c = x.shape[-1]
        used = max(max(t) for t in self.table) + 1
        if c != used:
            raise ValueError(f"PartialConv's connection table addresses {used} input maps, got {c} (x shape {x.shape}).")
        op = ops.convolve if self.conv_mode == "convolution" else ops.cross_correlate
        # The stored kernels are scattered into one dense (KH, KW, C, maps)
        # kernel whose unconnected entries are zero: one convolution instead of
        # one per run (several times faster on CPU), the same outputs and
        # gradients for the stored weights.
        runs = self.runs()
        kernels = [self.param(f"kernel_{k}", self.kernel_init, (kh, kw, len(maps[0]), len(maps)), self.param_dtype)
                   for k, (_, maps) in enumerate(runs)]
        # in the stored kernels' own dtype (params given wider than param_dtype, e.g. a float64 reference, stay so)
        dense = jnp.zeros((kh, kw, c, len(self.table)), jnp.result_type(*kernels))
        for kernel, (first, maps) in zip(kernels, runs):
            fan_in = len(maps[0])
            # kernel[:, :, f, m] connects input map maps[m][f] to output map first + m.
            rows = np.array([maps[m][f] for f in range(fan_in) for m in range(len(maps))])
            cols = np.array([first + m for f in range(fan_in) for m in range(len(maps))])
            dense = dense.at[:, :, rows, cols].set(kernel.reshape(kh, kw, -1))
        bias = self.param("bias", self.bias_init, (len(self.table),), self.param_dtype)
        x, dense, bias = promote_dtype(x, dense, bias, dtype=self.dtype)
        return op(x, dense, padding=self.padding) + bias


def rbf_prototypes(num_classes: int = 10, features: int = 84) -> np.ndarray:
    """A fixed +1/-1 code, (features, num_classes), for `EuclideanRBF`.

    LeNet-5's prototypes are stylised 7x12 bitmaps of the ASCII characters
    (LeCun et al. 1998, II.B and Fig. 3), drawn by hand and not published as
    numbers. In their place this takes rows 1..num_classes of the Sylvester
    Hadamard matrix of order 128 truncated to the first `features` entries:
    deterministic, +1/-1 like the bitmaps, and well separated (for 10 classes
    and 84 features every pair differs in 40 to 42 positions).
    """
    order = 1
    while order < max(features, num_classes + 1):
        order *= 2
    h = np.array([[1.0]])
    while h.shape[0] < order:
        h = np.block([[h, h], [h, -h]])
    return np.ascontiguousarray(h[1:num_classes + 1, :features].T).astype(np.float32)


class EuclideanRBF(nn.Module):
    """LeNet-5's output layer: y_i = sum_j (x_j - w_ij)^2 (LeCun et al. 1998, eq. 7).

    x: (N, features) -> penalties (N, num_classes); the smallest penalty is
    the predicted class. The prototypes w (features x num_classes, +1/-1, see
    `rbf_prototypes`) are fixed: they live in the `constants` collection, not
    in `params`, so they are never trained and not counted as parameters.
    """

    num_classes: int = 10
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x):
        if x.ndim != 2:
            raise ValueError(f"EuclideanRBF expects (N, features), got shape {x.shape}; flatten first.")
        features = x.shape[-1]
        proto = self.variable("constants", "prototypes",
                              lambda: jnp.asarray(rbf_prototypes(self.num_classes, features))).value
        x, proto = promote_dtype(x, proto, dtype=self.dtype)
        return jnp.sum(jnp.square(x[:, :, None] - proto[None]), axis=1)

    def macs(self, variables, out_shape) -> int:
        """One squared difference per prototype entry (for `jaxcnn.summary`)."""
        return int(np.prod(variables["constants"]["prototypes"].shape))
