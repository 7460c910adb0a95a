"""DenseNet: published counts, dense connectivity, transitions, switches."""

import chex
import jax
import jax.numpy as jnp
import pytest

import jaxcnn
from jaxcnn.models.densenet import DenseBlock, DenseNet


def _count(name, **overrides):
    model = jaxcnn.create_model(name, **overrides)
    shape = jaxcnn.default_input_shape(name)
    return jaxcnn.count_params(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape))))


def densenet_count(blocks, k, init, bottleneck, theta, stem, classes, bn_size=4):
    """Huang et al. 2017, section 3: convolutions without bias, BN = 2 params per map.
    Layer on c maps: BN(c) + 3x3 conv c->k, or with the bottleneck
    BN(c) + 1x1 c->4k + BN(4k) + 3x3 4k->k. Transition: BN(c) + 1x1 c->floor(theta c).
    Head: BN(c) + FC c->classes."""
    total = 7 * 7 * 3 * init + 2 * init if stem == "imagenet" else 3 * 3 * 3 * init
    c = init
    for i, n in enumerate(blocks):
        for _ in range(n):
            if bottleneck:
                total += 2 * c + c * bn_size * k + 2 * bn_size * k + 9 * bn_size * k * k
            else:
                total += 2 * c + 9 * c * k
            c += k
        if i < len(blocks) - 1:
            out = int(theta * c)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * classes + classes


# torchvision.models.densenet*: the documented "num_params" of the IMAGENET1K_V1 weights.
@pytest.mark.parametrize("name, blocks, k, init, expected", [
    ("densenet121", (6, 12, 24, 16), 32, 64, 7_978_856),
    ("densenet161", (6, 12, 36, 24), 48, 96, 28_681_000),
    ("densenet169", (6, 12, 32, 32), 32, 64, 14_149_480),
    ("densenet201", (6, 12, 48, 32), 32, 64, 20_013_928),
])
def test_imagenet_counts_match_torchvision(name, blocks, k, init, expected):
    assert densenet_count(blocks, k, init, True, 0.5, "imagenet", 1000) == expected
    assert _count(name) == expected


def test_densenet40_12_count():
    # Huang et al. 2017, table 2: DenseNet (L=40, k=12), "1.0M". Exactly:
    # conv0 3*3*3*16 = 432. A layer on c maps costs 2c + 9*12*c = 110c.
    # block 1: c = 16, 28, ..., 148: sum 12*16 + 12*66 = 984 -> 108,240; ends with 160 maps
    # transition 1: 2*160 + 160*160 = 25,920
    # block 2: sum 12*160 + 792 = 2,712 -> 298,320; ends with 304
    # transition 2: 2*304 + 304*304 = 93,024
    # block 3: sum 12*304 + 792 = 4,440 -> 488,400; ends with 448
    # norm5 896, classifier 448*10 + 10 = 4,490
    expected = 432 + 108_240 + 25_920 + 298_320 + 93_024 + 488_400 + 896 + 4_490
    assert expected == 1_019_722
    assert densenet_count((12, 12, 12), 12, 16, False, 1.0, "cifar", 10) == expected
    assert _count("densenet40_12") == expected


def test_densenet_bc_100_12_count():
    # Huang et al. 2017, table 2: DenseNet-BC (L=100, k=12), 0.8M; exactly 769,162 with
    # 16 bottleneck layers per block, 2k = 24 initial maps and compression 0.5.
    assert densenet_count((16, 16, 16), 12, 24, True, 0.5, "cifar", 10) == 769_162
    assert _count("densenet_bc_100_12") == 769_162


def test_switches_change_the_counts_as_the_arithmetic_says():
    assert _count("densenet_bc_100_12", compression=1.0) == densenet_count((16, 16, 16), 12, 24, True, 1.0, "cifar", 10)
    assert _count("densenet_bc_100_12", bottleneck=False) == densenet_count((16, 16, 16), 12, 24, False, 0.5,
                                                                            "cifar", 10)
    assert _count("densenet121", growth_rate=12) == densenet_count((6, 12, 24, 16), 12, 64, True, 0.5,
                                                                   "imagenet", 1000)


def test_torchvision_names_and_dense_connectivity():
    v = jax.eval_shape(jaxcnn.create_model("densenet121").init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    p = v["params"]
    assert {"conv0", "norm0", "norm5", "classifier", "transition3"} <= set(p)
    assert "transition4" not in p
    # Layer j of block 1 sees the 64 stem maps and the 32 maps of each earlier layer.
    for j in range(1, 7):
        assert p["denseblock1"][f"denselayer{j}"]["conv1"]["kernel"].shape == (1, 1, 64 + 32 * (j - 1), 128)
        assert p["denseblock1"][f"denselayer{j}"]["conv2"]["kernel"].shape == (3, 3, 128, 32)
    # 64 + 6*32 = 256 maps enter transition 1, which keeps 128.
    assert p["transition1"]["conv"]["kernel"].shape == (1, 1, 256, 128)


def test_block_output_keeps_its_input_and_appends_new_maps():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 5))
    block = DenseBlock(num_layers=3, growth_rate=4, bottleneck=False)
    v = jax.jit(block.init)(jax.random.key(1, impl="rbg"), x)
    y = jax.jit(block.apply)(v, x)
    chex.assert_shape(y, (2, 6, 6, 5 + 3 * 4))
    chex.assert_trees_all_equal(y[..., :5], x)  # the concatenation passes every earlier map on unchanged


def test_forward_backward():
    # Computed for real on a shortened DenseNet-BC (CIFAR stem, 2 layers per block);
    # densenet40_12's gradient traced with eval_shape (compiling its 40 layers
    # takes minutes on a shared CPU).
    model = jaxcnn.create_model("densenet_bc_100_12", block_sizes=(2, 2, 2))
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)

    def loss(params, model=model, variables=variables, x=x):
        logits, upd = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                                  mutable=["batch_stats"])
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 1]), (logits, upd)

    (value, (logits, upd)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    chex.assert_shape(logits, (2, 10))
    chex.assert_tree_all_finite((value, grads))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))

    model = jaxcnn.create_model("densenet40_12")
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    (value, (logits, _)), grads = jax.eval_shape(
        lambda p, bs, x: jax.value_and_grad(loss, has_aux=True)(p, model, {"batch_stats": bs}, x),
        variables["params"], variables["batch_stats"], x)
    assert logits.shape == (2, 10)
    chex.assert_trees_all_equal_shapes(grads, variables["params"])
    # 32 -> 16 -> 8 through the two transitions; the head sees 448 maps.
    assert variables["params"]["classifier"]["kernel"].shape == (448, 10)


def test_bn_axis_name_syncs_statistics_under_pmap():
    kw = dict(block_sizes=(2, 2), growth_rate=4, init_features=8, stem="cifar", num_classes=3)
    x = jax.random.normal(jax.random.key(2), (4, 8, 8, 3)) * jnp.arange(1, 5)[:, None, None, None]
    model = DenseNet(**kw)
    v = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)
    ref, ref_upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    sync = DenseNet(**kw, bn_axis_name="devices")
    rep = jax.tree_util.tree_map(lambda a: jnp.stack([a] * 2), v)
    out, upd = jax.pmap(lambda v, x: sync.apply(v, x, train=True, mutable=["batch_stats"]), axis_name="devices")(
        rep, x.reshape(2, 2, 8, 8, 3))
    chex.assert_trees_all_close(out.reshape(4, 3), ref, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[1], upd), ref_upd, atol=1e-5, rtol=1e-5)


def test_bad_values_are_refused():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="stem"):
        jax.eval_shape(jaxcnn.create_model("densenet40_12", stem="big").init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="compression"):
        jax.eval_shape(jaxcnn.create_model("densenet40_12", compression=0.0).init, jax.random.key(0), x)
    with pytest.raises(ValueError, match="rank 4"):
        jax.eval_shape(jaxcnn.create_model("densenet40_12").init, jax.random.key(0), x[0])
