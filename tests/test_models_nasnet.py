"""NASNet-A: the cells of Zoph et al. 2018, figure 4, and the counts of the
published models."""

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.models import family_of
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
    v = _variables("nasnet_a_mobile", aux_logits=False)  # Keras' application has no auxiliary head
    assert jaxcnn.count_params(v) == 5_289_978
    assert jaxcnn.count_params(v["batch_stats"]) == 36_738
    assert jaxcnn.count_params(v) + jaxcnn.count_params(v["batch_stats"]) == 5_326_716
    # Each BatchNorm holds as many statistics (mean, var) as parameters (scale, bias).
    bn_params = sum(x.size for path, x in jax.tree_util.tree_leaves_with_path(v["params"])
                    if path[-1].key in ("scale", "bias") and "predictions" not in str(path[0]))
    assert bn_params == 36_738


def test_nasnet_a_large_counts_match_keras():
    # keras.applications.NASNetLarge(): Total 88,949,818 = trainable 88,753,150 + non-trainable 196,668.
    v = _variables("nasnet_a_large", aux_logits=False)
    assert jaxcnn.count_params(v) == 88_753_150
    assert jaxcnn.count_params(v) + jaxcnn.count_params(v["batch_stats"]) == 88_949_818


def test_nasnet_a_cifar_count_is_the_papers_3_3m():
    # Zoph et al. 2018, table 1: NASNet-A (6 @ 768), 3.3M parameters, given to
    # 0.1M only, so the figure is matched to its rounding: +-0.05M. It is the net
    # without its auxiliary head (which adds 1,631,498, test_aux_head_counts).
    n = jaxcnn.count_params(_variables("nasnet_a_cifar", aux_logits=False))
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
                                rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats", "intermediates"])
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0]), logits

    for model, x in ((NASNet(num_blocks=1, penultimate_filters=96, stem="cifar", stem_filters=12, num_classes=3,
                             aux_logits=False), jnp.zeros((2, 8, 8, 3))),
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


# ---------------------------------------------------------------- the paper's training: aux head, drop path


def _aux_head(c_in, map_side, num_classes):
    """TF-slim's _build_aux_head, counted by hand: 5x5/3 VALID pool, 1x1 conv to 128 (no bias), BN (scale,
    offset), a conv over the whole pooled map to 768 (no bias), BN, dense to num_classes with bias."""
    pooled = (map_side - 5) // 3 + 1
    return (c_in * 128 + 2 * 128 + pooled * pooled * 128 * 768 + 2 * 768 + 768 * num_classes + num_classes)


def test_aux_head_counts():
    # Mobile 4 @ 1056 on 224x224: stem 3x3/2 VALID -> 111, two stem reductions -> 56 -> 28, the first reduction
    # -> 14: the second stack's cells (88 filters) give 6 * 88 = 528 maps of 14x14, pooled to 4x4.
    assert _aux_head(528, 14, 1000) == 67_584 + 256 + 1_572_864 + 1_536 + 769_000 == 2_411_240
    v = _variables("nasnet_a_mobile")
    assert jaxcnn.count_params(v) == 5_289_978 + 2_411_240  # Keras' count plus the head
    assert jaxcnn.count_params(v["params"]["aux"]) == 2_411_240
    assert jaxcnn.count_params(v["batch_stats"]) == 36_738 + 2 * (128 + 768)
    assert v["params"]["aux"]["conv"]["kernel"].shape == (4, 4, 128, 768)
    # CIFAR 6 @ 768 on 32x32: stride-1 stem, the second stack at 16x16 with 6 * 64 = 384 maps, pooled to 4x4.
    assert _aux_head(384, 16, 10) == 1_631_498
    with_head, without = (jaxcnn.count_params(_variables("nasnet_a_cifar", aux_logits=a)) for a in (True, False))
    assert with_head - without == 1_631_498


def _tiny(**fields):
    # Cells of 4 filters; a 10x10 image leaves the second stack a 5x5 map, the smallest the aux head takes.
    return NASNet(num_blocks=1, penultimate_filters=96, stem="cifar", stem_filters=12, num_classes=3, **fields)


def test_aux_logits_sown_in_training_only_and_weighted_by_the_family():
    model = _tiny(drop_path_rate=0.0)
    x = jnp.zeros((2, 10, 10, 3))
    v = jax.eval_shape(model.init, jax.random.key(1), x)
    assert "aux" in v["params"]
    _, state = jax.eval_shape(lambda v: model.apply(v, x, train=True, mutable=["batch_stats", "intermediates"]), v)
    (aux,) = state["intermediates"]["aux_logits"]
    assert aux.shape == (2, 3)
    _, state = jax.eval_shape(lambda v: model.apply(v, x, mutable=["intermediates"]), v)
    assert "aux_logits" not in state.get("intermediates", {})
    assert family_of(model).aux_weight(model) == 0.4  # TF-slim's weighting
    assert family_of(_tiny(aux_logits=False)).aux_weight(_tiny(aux_logits=False)) == 0.0
    with pytest.raises(ValueError, match="aux_logits=False"):
        jax.eval_shape(model.init, jax.random.key(1), jnp.zeros((1, 8, 8, 3)))


def test_drop_path_schedule_by_cell_and_progress():
    # C = 3N + 2 cells (+2 for the ImageNet stem); cell c's rate is rate * (c + 1) / C * min(1, progress).
    cifar = jaxcnn.create_model("nasnet_a_cifar")
    assert cifar.num_cells == 20 and cifar.drop_path_rate == 0.4  # TF-slim: keep 0.6, 18 normal + 2 reduction
    rates = cifar.drop_path_rates(1.0)
    assert np.isclose(rates[-1], 0.4) and np.isclose(rates[0], 0.4 / 20)
    assert np.isclose(cifar.drop_path_rates(0.5)[0], 0.4 * 1 / 20 * 0.5)
    assert np.isclose(cifar.drop_path_rates(3.0)[9], 0.4 * 10 / 20)  # progress past the end counts as 1
    assert np.allclose(cifar.drop_path_rates(0.0), 0.0)
    large = jaxcnn.create_model("nasnet_a_large")
    assert large.num_cells == 18 + 2 + 2 and large.drop_path_rate == 0.3
    assert jaxcnn.create_model("nasnet_a_mobile").drop_path_rate == 0.0
    assert family_of(cifar).takes_progress(cifar)
    assert not family_of(cifar).takes_progress(jaxcnn.create_model("nasnet_a_mobile"))


def test_each_cell_gets_its_scheduled_rate():
    # The tiny net runs normal_0, reduce_1, normal_2, reduce_2, normal_3: C = 5, so at progress 0.5 and rate
    # 0.4 cell c drops with 0.4 * 0.5 * (c + 1) / 5 = 0.04 (c + 1).
    model = _tiny(drop_path_rate=0.4)
    x = jnp.zeros((2, 10, 10, 3))
    v = jax.eval_shape(model.init, jax.random.key(0), x)
    seen = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module, (NormalCell, ReductionCell)):
            seen.append((context.module.name, float(args[3])))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(lambda v: model.apply(v, x, train=True, progress=0.5, rngs={"dropout": jax.random.key(1)},
                                             mutable=["batch_stats", "intermediates"]), v)
    assert [n for n, _ in seen] == ["normal_0", "reduce_1", "normal_2", "reduce_2", "normal_3"]
    assert np.allclose([r for _, r in seen], [0.04, 0.08, 0.12, 0.16, 0.20])


def test_drop_path_rate_in_expectation():
    # In a normal cell b4 = d(avg3x3(p)) + d(avg3x3(p)), and p needs no adjusting when it has the cell's
    # width: per example b4 / avg3x3(p) = (m1 + m2) / keep with m1, m2 the two operations' keep draws. Over
    # 4,000 examples (8,000 draws) the dropped fraction is the rate within 4 standard deviations.
    rate, n = 0.3, 4000
    cell = NormalCell(filters=2)
    h = jax.random.normal(jax.random.key(0), (n, 3, 3, 2))
    p = jax.random.normal(jax.random.key(1), (n, 3, 3, 2)) + 3.0
    v = _random_variables(cell, h[:1], p[:1])
    out, _ = jax.jit(lambda v, h, p, k: cell.apply(v, h, p, True, rate, rngs={"dropout": k},
                                                   mutable=["batch_stats"]))(v, h, p, jax.random.key(2))
    avg = p.sum((1, 2)) / 9  # the centre pixel's 3x3 mean is the map's mean
    ratio = np.asarray(out[:, 1, 1, 8:10] / avg)  # [p, b1, b2, b3, b4, b5], 2 maps each: b4 is maps 8-9
    kept = ratio * (1 - rate)  # m1 + m2, in {0, 1, 2}
    assert np.allclose(kept, np.round(kept), atol=1e-3)
    dropped = 1 - np.round(kept).mean(-1).mean() / 2
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / (2 * n)), dropped
    # The identity operation (b3's h_{i-1}) and the first block are never dropped.
    chex.assert_trees_all_close(out[..., :2], p)


def test_eval_is_deterministic_and_drops_nothing():
    # The whole net in evaluation draws nothing: it runs with no rng at all (Flax refuses make_rng without
    # one), while training draws its drops from the `dropout` rng.
    model = _tiny(drop_path_rate=0.4, aux_logits=False)
    x = jnp.zeros((2, 8, 8, 3))
    v = jax.eval_shape(model.init, jax.random.key(0), x)
    jax.eval_shape(lambda v: model.apply(v, x, train=False, progress=1.0), v)
    with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
        jax.eval_shape(lambda v: model.apply(v, x, train=True, progress=1.0, mutable=["batch_stats"]), v)
    # A cell computed for real (one compilation): evaluation under two keys equals the cell without drop path;
    # training at rate 0 equals it too, and at rate 0.4 two keys drop differently.
    cell = NormalCell(filters=2)
    h = jax.random.normal(jax.random.key(0), (8, 4, 4, 3))
    p = jax.random.normal(jax.random.key(1), (8, 4, 4, 2))
    cv = _random_variables(cell, h, p)

    @jax.jit
    def outputs(cv):
        def run(train, rate, key=0):
            return cell.apply(cv, h, p, train, rate, rngs={"dropout": jax.random.key(key)}, mutable=["batch_stats"])[0]

        return run(False, 0.4, 2), run(False, 0.4, 3), run(False, None), run(True, 0.0), run(True, None), \
            run(True, 0.4, 2), run(True, 0.4, 3)

    ev2, ev3, plain_ev, t0, plain_t, t2, t3 = outputs(cv)
    chex.assert_trees_all_equal(ev2, ev3)
    chex.assert_trees_all_equal(ev2, plain_ev)
    chex.assert_trees_all_close(t0, plain_t, atol=1e-6)
    assert not np.allclose(t2, t3)
