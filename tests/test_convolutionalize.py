import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn import ops
from jaxcnn.models.convolutionalize import Convolutionalized
from jaxcnn.layers import Conv, Flatten
from jaxcnn.models._common import validate_image


class TinyClassifier(nn.Module):
    """conv 3x3 -> pool 2 -> conv 3x3 -> Flatten -> fc1 (ReLU, dropout) -> fc2, on 12x12x3."""

    num_classes: int = 5

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="tiny", channels=3, exact_size=(12, 12))
        x = nn.relu(Conv(4, 3, name="conv1")(x))       # 10x10
        x = ops.max_pool(x, 2)                          # 5x5
        x = nn.relu(Conv(6, 3, name="conv2")(x))       # 3x3x6
        x = Flatten()(x)
        x = nn.relu(nn.Dense(16, name="fc1")(x))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="fc2")(x)


@pytest.fixture(scope="module")
def trained():
    model = TinyClassifier()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 3)))
    return model, variables


def test_same_logits_at_original_size(trained):
    model, variables = trained
    x = jax.random.normal(jax.random.key(1), (3, 12, 12, 3))
    cmodel, cvars = jaxcnn.convolutionalize(model, variables, input_shape=(12, 12, 3))
    assert isinstance(cmodel, Convolutionalized)
    # fc1's kernel (3*3*6, 16) becomes (3, 3, 6, 16); fc2's (16, 5) becomes (1, 1, 16, 5)
    chex.assert_shape(cvars["params"]["model"]["fc1"]["kernel"], (3, 3, 6, 16))
    chex.assert_shape(cvars["params"]["model"]["fc2"]["kernel"], (1, 1, 16, 5))
    assert jaxcnn.count_params(cvars) == jaxcnn.count_params(variables)
    heat = jax.jit(cmodel.apply)(cvars, x)
    chex.assert_shape(heat, (3, 1, 1, 5))
    np.testing.assert_allclose(heat[:, 0, 0], model.apply(variables, x), rtol=1e-5, atol=1e-6)


def test_heat_map_on_larger_input_slides_the_classifier(trained):
    model, variables = trained
    cmodel, cvars = jaxcnn.convolutionalize(model, variables, input_shape=(12, 12, 3))
    big = jax.random.normal(jax.random.key(2), (2, 20, 16, 3))
    heat = cmodel.apply(cvars, big)
    # the net's output stride is 2 (one pooling): (20 - 12) / 2 + 1 = 5 rows, (16 - 12) / 2 + 1 = 3 columns
    chex.assert_shape(heat, (2, 5, 3, 5))
    # each heat-map cell is the classifier applied to the 12x12 window at stride 2
    for i, j in [(0, 0), (2, 1), (4, 2)]:
        crop = big[:, 2 * i:2 * i + 12, 2 * j:2 * j + 12]
        np.testing.assert_allclose(heat[:, i, j], model.apply(variables, crop), rtol=1e-5, atol=1e-5)


def test_train_flag_passes_through(trained):
    model, variables = trained
    cmodel, cvars = jaxcnn.convolutionalize(model, variables, input_shape=(12, 12, 3))
    x = jax.random.normal(jax.random.key(3), (1, 16, 16, 3))
    y = cmodel.apply(cvars, x, train=True, rngs={"dropout": jax.random.key(0)})
    chex.assert_shape(y, (1, 3, 3, 5))
    # train=True reaches fc1's Dropout(0.5): the output differs from evaluation's and depends on the key
    assert not np.allclose(y, cmodel.apply(cvars, x))
    assert not np.allclose(y, cmodel.apply(cvars, x, train=True, rngs={"dropout": jax.random.key(1)}))
    np.testing.assert_array_equal(y, cmodel.apply(cvars, x, train=True, rngs={"dropout": jax.random.key(0)}))


def test_rejects_model_without_dense_head():
    class ConvOnly(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = False):
            return Conv(2, 3)(x)

    m = ConvOnly()
    v = m.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="Flatten"):
        jaxcnn.convolutionalize(m, v, input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="input_shape"):
        jaxcnn.convolutionalize(m, v)
