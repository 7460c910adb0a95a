"""The Conv layer: both semantics, parameter layout, and its refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.layers import Conv


def test_conv_param_shapes_and_output_size():
    # 32x32x3 input, 5x5 VALID -> 28x28 (32 - 5 + 1); kernel HWIO = (5, 5, 3, 6), 456 params.
    layer = Conv(features=6, kernel_size=5)
    x = jnp.ones((2, 32, 32, 3))
    variables = layer.init(jax.random.key(0), x)
    assert variables["params"]["kernel"].shape == (5, 5, 3, 6)
    assert variables["params"]["bias"].shape == (6,)
    assert layer.apply(variables, x).shape == (2, 28, 28, 6)


def test_convolution_mode_equals_cross_correlation_with_flipped_kernel():
    x = jax.random.normal(jax.random.key(1), (2, 9, 9, 3))
    xc = Conv(features=4, kernel_size=3, padding="SAME")
    cv = Conv(features=4, kernel_size=3, padding="SAME", conv_mode="convolution")
    v = xc.init(jax.random.key(2), x)
    flipped = jax.tree_util.tree_map(lambda a: a, v)
    flipped["params"]["kernel"] = v["params"]["kernel"][::-1, ::-1]
    np.testing.assert_allclose(xc.apply(v, x), cv.apply(flipped, x), rtol=1e-5, atol=1e-5)


def test_unknown_conv_mode_names_the_allowed_ones():
    with pytest.raises(ValueError, match="cross_correlation"):
        Conv(features=2, conv_mode="convolutoin").init(jax.random.key(0), jnp.ones((1, 4, 4, 1)))


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups=2"):
        Conv(features=4, groups=2).init(jax.random.key(0), jnp.ones((1, 6, 6, 3)))
