"""NASNet-A: the cells of Zoph et al. 2018, figure 4, and the counts of the
published models."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.models.nasnet import NASNet, NormalCell, ReductionCell


def _variables(name, **overrides):
    model = jaxcnn.create_model(name, **overrides)
    shape = jaxcnn.default_input_shape(name)
    return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))


def _random_variables(module, *args):
    """Variables of the shapes init gives, filled without running init (whose
    compilation of the forward pass dominates a CPU test): He-normal kernels,
    unit scales, zero biases, statistics of a standard normal."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), *args)

    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.standard_normal(leaf.shape, dtype=np.float32) * np.sqrt(2.0 / fan_in))
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape)
        return jnp.zeros(leaf.shape)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_nasnet_a_mobile_counts_match_keras():
    # keras.applications.NASNetMobile().summary(): "Total params: 5,326,716,
    # Trainable params: 5,289,978, Non-trainable params: 36,738". Keras counts
    # BatchNorm moving means and variances as non-trainable parameters; they
    # live here in `batch_stats`. count_params counts `params` only
    # (torchvision's convention), which is Keras' trainable figure, also the one
    # imgclsmob lists for NASNet-A 4@1056 (5,289,978).
    v = _variables("nasnet_a_mobile")
    assert jaxcnn.count_params(v) == 5_289_978
    assert jaxcnn.count_params(v["batch_stats"]) == 36_738
    assert jaxcnn.count_params(v) + jaxcnn.count_params(v["batch_stats"]) == 5_326_716
    # Each BatchNorm holds as many statistics (mean, var) as parameters (scale, bias).
    bn_params = sum(x.size for path, x in jax.tree_util.tree_leaves_with_path(v["params"])
                    if path[-1].key in ("scale", "bias") and "predictions" not in str(path[0]))
    assert bn_params == 36_738


def test_nasnet_a_large_counts_match_keras():
    # keras.applications.NASNetLarge(): Total 88,949,818 = trainable 88,753,150 + non-trainable 196,668.
    v = _variables("nasnet_a_large")
    assert jaxcnn.count_params(v) == 88_753_150
    assert jaxcnn.count_params(v) + jaxcnn.count_params(v["batch_stats"]) == 88_949_818


def test_nasnet_a_cifar_count_is_the_papers_3_3m():
    # Zoph et al. 2018, table 1: NASNet-A (6 @ 768), 3.3M parameters, given to
    # 0.1M only (and for the TF-slim CIFAR model with its auxiliary head, which
    # is not built here), so the figure is matched to its rounding: +-0.05M.
    n = jaxcnn.count_params(_variables("nasnet_a_cifar"))
    assert abs(n - 3_300_000) <= 50_000, n


def test_cell_shapes_and_wiring():
    v = _variables("nasnet_a_mobile")["params"]
    # Cells of 44 (= 1056 / 24), 88, 176 filters; reduction cells at block ids 4 and 8;
    # the stem's reduction cells have 11 and 22.
    assert {"stem_1", "stem_2", "reduce_4", "reduce_8"} <= set(v)
    assert {f"normal_{i}" for i in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12)} <= set(v)
    assert v["stem_1"]["conv_1"]["kernel"].shape == (1, 1, 32, 11)
    assert v["normal_0"]["conv_1"]["kernel"].shape == (1, 1, 4 * 22, 44)
    # A cell right after a reduction adjusts h_{i-1} (twice the size) by the factorized reduction.
    assert v["normal_5"]["adjust_conv_1"]["kernel"].shape == (1, 1, 6 * 44, 44)
    assert v["normal_5"]["adjust_conv_2"]["kernel"].shape == (1, 1, 6 * 44, 44)
    # ... otherwise it is projected to the cell's width by ReLU-1x1 conv-BN
    # (reduce_4 gives 4 * 88 maps, normal_5 6 * 88).
    assert v["normal_6"]["adjust_conv_projection"]["kernel"].shape == (1, 1, 4 * 88, 88)
    assert v["normal_7"]["adjust_conv_projection"]["kernel"].shape == (1, 1, 6 * 88, 88)
    assert "adjust_conv_1" not in v["normal_6"]
    # Separable convolutions applied twice: depthwise k x k (one filter per channel) + pointwise 1x1.
    sep = v["normal_1"]["left1"]
    assert sep["sep1_depthwise"]["kernel"].shape == (5, 5, 1, 44)
    assert sep["sep1_pointwise"]["kernel"].shape == (1, 1, 44, 44)
    assert sep["sep2_depthwise"]["kernel"].shape == (5, 5, 1, 44)
    assert set(v["reduce_4"]) >= {"left1", "right1", "right2", "right3", "left5"}
    # reduce_4 (88 filters) sees normal_3 (6 * 44 maps) as h_i and normal_2 as h_{i-1}, projected to 88.
    assert v["reduce_4"]["conv_1"]["kernel"].shape == (1, 1, 6 * 44, 88)
    assert v["reduce_4"]["right1"]["sep1_depthwise"]["kernel"].shape == (7, 7, 1, 88)
    assert v["predictions"]["kernel"].shape == (1056, 1000)


def test_cells_concatenate_as_figure_4():
    h = jax.random.normal(jax.random.key(0), (2, 8, 8, 12))
    p = jax.random.normal(jax.random.key(1), (2, 8, 8, 6))
    cell = NormalCell(filters=6)
    v = _random_variables(cell, h, p)
    out = jax.jit(cell.apply)(v, h, p)
    # [p, b1..b5]: 6 * filters maps, the first block is h_{i-1} itself (already 6 maps of 8x8).
    chex.assert_shape(out, (2, 8, 8, 36))
    chex.assert_trees_all_equal(out[..., :6], p)
    # b4 = avg3x3(p) + avg3x3(p): away from the border, twice the 3x3 mean of p.
    mean = sum(p[:, 1 + i:7 + i, 1 + j:7 + j] for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9
    chex.assert_trees_all_close(out[:, 1:7, 1:7, 24:30], 2 * mean, atol=1e-5)

    red = ReductionCell(filters=5)
    out = jax.eval_shape(lambda v, h: red.apply(v, h, None), _random_variables(red, h, None), h)
    assert out.shape == (2, 4, 4, 20)  # [b2, b3, b4, b5] at half size


def test_forward_backward():
    # Computed for real through a normal cell and a reduction cell (each
    # separable branch's backward takes about a second to compile on a CPU);
    # a whole small NASNet's and nasnet_a_cifar's gradients traced with eval_shape.
    h = jax.random.normal(jax.random.key(0), (2, 8, 8, 12))
    p = jax.random.normal(jax.random.key(1), (2, 8, 8, 6))
    normal, reduction = NormalCell(filters=6), ReductionCell(filters=8)
    vn = _random_variables(normal, h, p)
    vr = _random_variables(reduction, jnp.zeros((2, 8, 8, 36)), h)

    def cells(params, h, p):
        y, _ = normal.apply({"params": params[0], "batch_stats": vn["batch_stats"]}, h, p, train=True,
                            mutable=["batch_stats"])
        z, _ = reduction.apply({"params": params[1], "batch_stats": vr["batch_stats"]}, y, h, train=True,
                               mutable=["batch_stats"])
        return jnp.mean(z ** 2), z

    (value, z), grads = jax.jit(jax.value_and_grad(cells, has_aux=True))((vn["params"], vr["params"]), h, p)
    chex.assert_shape(z, (2, 4, 4, 32))
    chex.assert_tree_all_finite((value, grads))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))

    def loss(params, batch_stats, x, model):
        logits, _ = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                mutable=["batch_stats"])
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0]), logits

    for model, x in ((NASNet(num_blocks=1, penultimate_filters=96, stem="cifar", stem_filters=12, num_classes=3),
                      jnp.zeros((2, 8, 8, 3))),
                     (jaxcnn.create_model("nasnet_a_cifar"), jnp.zeros((2, 32, 32, 3)))):
        v = jax.eval_shape(model.init, jax.random.key(0), x)
        (_, logits), grads = jax.eval_shape(
            lambda p, b, x, model=model: jax.value_and_grad(loss, has_aux=True)(p, b, x, model),
            v["params"], v["batch_stats"], x)
        assert logits.shape == (2, model.num_classes)
        chex.assert_trees_all_equal_shapes(grads, v["params"])


def test_bad_values_are_refused():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="= 96"):
        jax.eval_shape(jaxcnn.create_model("nasnet_a_cifar", penultimate_filters=100).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="stem"):
        jax.eval_shape(jaxcnn.create_model("nasnet_a_cifar", stem="tiny").init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="at least 32x32"):
        jax.eval_shape(jaxcnn.create_model("nasnet_a_mobile").init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
