"""LeNet-5, AlexNet, VGG and the small CNNs: exact parameter counts from the
papers, intermediate shapes, ablation switches, input refusals and the
convolution / cross-correlation equivalence. Big models are only traced
(jax.eval_shape); nothing here allocates their weights."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn import ops
from jaxcnn.layers import scaled_tanh
from jaxcnn.models import create_model, default_input_shape

KEY = jax.random.key(0, impl="rbg")


def n_params(name, **overrides):
    model = create_model(name, **overrides)
    x = jax.ShapeDtypeStruct((1, *default_input_shape(name)), jnp.float32)
    return jaxcnn.count_params(jax.eval_shape(model.init, KEY, x))


def conv(k, cin, cout, groups=1):
    """Parameters of a k x k convolution with bias."""
    return k * k * (cin // groups) * cout + cout


def dense(fin, fout):
    return fin * fout + fout


# ---------------------------------------------------------------- LeNet-5

def test_lenet5_per_layer_counts_and_shapes():
    # LeCun et al. 1998, section II.B: C1 156 trainable parameters, S2 12, C3 1,516, S4 32,
    # C5 48,120, F6 10,164; 60,000 in all. Maps 28x28x6, 14x14x6, 10x10x16, 5x5x16, 1x1x120, 84 units.
    s = jaxcnn.summary("lenet5")
    expected = {
        "C1": ((28, 28, 6), 156), "S2": ((14, 14, 6), 12), "C3": ((10, 10, 16), 1_516),
        "S4": ((5, 5, 16), 32), "C5": ((1, 1, 120), 48_120), "F6": ((84,), 10_164),
        "output": ((10,), 0),
    }
    for name, (shape, params) in expected.items():
        row = s.row(name)
        assert (row.output_shape, row.params) == (shape, params), name
    assert s.trainable_params == sum(p for _, p in expected.values()) == 60_000
    assert s.non_trainable_params == 84 * 10  # the RBF prototypes
    assert n_params("lenet5") == 60_000


def test_lenet5_modern_count():
    # Full C3, max pooling, ReLU, Dense(10): 156 + (25*6 + 1)*16 + 48,120 + 10,164 + (84 + 1)*10.
    assert 156 + conv(5, 6, 16) + 48_120 + 10_164 + dense(84, 10) == 61_706
    assert n_params("lenet5_modern") == 61_706


def test_lenet5_logits_are_negative_rbf_penalties():
    model = create_model("lenet5")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 1)), jnp.float32)
    variables = jax.jit(model.init)(KEY, x)
    logits, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    f6 = scaled_tanh(state["intermediates"]["F6"]["__call__"][0])
    proto = variables["constants"]["output"]["prototypes"]
    penalties = jnp.sum((f6[:, :, None] - proto[None]) ** 2, axis=1)  # eq. 7
    np.testing.assert_allclose(logits, -penalties, rtol=1e-5, atol=1e-5)


def test_lenet_switch_values_are_checked():
    x = jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)
    for field, bad in (("pooling", "median"), ("c3_table", "lenett"), ("activation", "gelu"), ("output", "svm")):
        with pytest.raises(ValueError, match="allowed"):
            jax.eval_shape(create_model("lenet5", **{field: bad}).init, KEY, x)


# ---------------------------------------------------------------- AlexNet

# Krizhevsky et al. 2012, section 3.5 and Fig. 2 (two GPUs: conv2, conv4, conv5 see one tower's maps).
ALEXNET_LAYERS = {
    "conv1": conv(11, 3, 96),                 # 34,944
    "conv2": conv(5, 96, 256, groups=2),      # 307,456
    "conv3": conv(3, 256, 384),               # 885,120
    "conv4": conv(3, 384, 384, groups=2),     # 663,936
    "conv5": conv(3, 384, 256, groups=2),     # 442,624
    "fc6": dense(6 * 6 * 256, 4096),          # 37,752,832
    "fc7": dense(4096, 4096),                 # 16,781,312
    "fc8": dense(4096, 1000),                 # 4,097,000
}


def test_alexnet_count_and_layers():
    assert sum(ALEXNET_LAYERS.values()) == 60_965_224
    s = jaxcnn.summary("alexnet")
    assert {r.name: r.params for r in s.rows if r.params} == ALEXNET_LAYERS
    assert n_params("alexnet") == 60_965_224


def test_alexnet_intermediate_shapes():
    # 227x227x3 -> conv1 55x55x96 -> pool 27x27 -> conv2 27x27x256 -> pool 13x13
    # -> conv3 13x13x384 -> conv4 13x13x384 -> conv5 13x13x256 -> pool 6x6x256.
    s = jaxcnn.summary("alexnet")
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["conv1"] == shapes["norm1"] == (55, 55, 96)
    assert shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == shapes["norm2"] == (27, 27, 256)
    assert shapes["pool2"] == (13, 13, 256)
    assert shapes["conv3"] == shapes["conv4"] == (13, 13, 384)
    assert shapes["conv5"] == (13, 13, 256)
    assert shapes["pool5"] == (6, 6, 256)
    assert shapes["flatten"] == (9216,)
    assert [r.layer_type for r in s.rows][:3] == ["Conv", "LRN", "MaxPool"]
    assert ops.conv_output_size(227, 11, 4) == 55 and ops.conv_output_size(55, 3, 2) == 27


def test_alexnet_owt_count():
    # Krizhevsky 2014 "One weird trick", torchvision's alexnet: 64-192-384-256-256, one tower.
    expected = (conv(11, 3, 64) + conv(5, 64, 192) + conv(3, 192, 384) + conv(3, 384, 256)
                + conv(3, 256, 256) + dense(9216, 4096) + dense(4096, 4096) + dense(4096, 1000))
    assert expected == 61_100_840
    assert n_params("alexnet_owt") == 61_100_840
    s = jaxcnn.summary("alexnet_owt")
    assert s.row("conv1").output_shape == (55, 55, 64) and s.row("pool5").output_shape == (6, 6, 256)
    assert not any(r.layer_type == "LRN" for r in s.rows)


def test_alexnet_switches():
    # groups=1: the same widths on one GPU, every map seeing every map (the oft-quoted 62.3M).
    one_tower = (60_965_224 + (conv(5, 96, 256) - conv(5, 96, 256, 2)) + (conv(3, 384, 384) - conv(3, 384, 384, 2))
                 + (conv(3, 384, 256) - conv(3, 384, 256, 2)))
    assert one_tower == 62_378_344
    assert n_params("alexnet", groups=1) == one_tower
    no_lrn = jaxcnn.summary(create_model("alexnet", lrn=False), (227, 227, 3))
    assert not any(r.layer_type == "LRN" for r in no_lrn.rows) and no_lrn.trainable_params == 60_965_224
    # 2x2 stride-2 pooling gives the same 27, 13, 6 as overlapping 3x3 stride 2.
    flat = jaxcnn.summary(create_model("alexnet", overlap_pool=False), (227, 227, 3))
    assert [flat.row(p).output_shape[:2] for p in ("pool1", "pool2", "pool5")] == [(27, 27), (13, 13), (6, 6)]


def test_alexnet_dropout_on_fc6_and_fc7_outputs_by_default():
    # Krizhevsky et al. 2012 sec. 4.2 and Caffe's train_val: fc6 -> relu6 -> drop6 -> fc7 -> relu7 -> drop7 -> fc8.
    names = [r.name for r in jaxcnn.summary("alexnet").rows]
    assert names[names.index("flatten"):] == ["flatten", "fc6", "drop6", "fc7", "drop7", "fc8"]
    # torchvision's classifier: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear.
    tv = jaxcnn.summary(create_model("alexnet_owt", dropout_placement="inputs"), (224, 224, 3))
    names = [r.name for r in tv.rows]
    assert names[names.index("flatten"):] == ["flatten", "drop6", "fc6", "drop7", "fc7", "fc8"]
    with pytest.raises(ValueError, match="dropout_placement"):
        jaxcnn.summary(create_model("alexnet", dropout_placement="before"), (227, 227, 3))


def test_alexnet_dropout_placement_changes_training_only():
    # A small AlexNet whose fc7 has 2 units: with dropout on fc7's outputs, fc8 sees fc7's ReLU output with
    # each unit zeroed or doubled (rate 0.5); with torchvision's placement fc8 sees fc7's ReLU output whole.
    fields = dict(num_classes=3, image_size=67, widths=(8, 8, 8, 8, 8), fc_features=(6, 2), groups=1)
    x = jax.random.normal(jax.random.key(0), (64, 67, 67, 3))
    out, inter = {}, {}
    for placement in ("outputs", "inputs"):
        model = create_model("alexnet", dropout_placement=placement, **fields)
        v = model.init(jax.random.key(1), x[:1])
        out[placement] = model.apply(v, x)
        _, state = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)},
                               capture_intermediates=lambda m, _: m.name in ("fc7", "fc8"),
                               mutable=["intermediates"])
        inter[placement] = (v, state["intermediates"])
    # The same parameters (a torchvision import fits either) and the same eval output.
    chex.assert_trees_all_equal_shapes(inter["outputs"][0], inter["inputs"][0])
    chex.assert_trees_all_close(out["outputs"], out["inputs"])
    v, cap = inter["outputs"]
    fc7 = np.maximum(np.asarray(cap["fc7"]["__call__"][0]), 0)
    fc8 = np.asarray(cap["fc8"]["__call__"][0])
    # fc8 = h W + b with h = relu(fc7) * mask / 0.5; solve for the mask per example and unit.
    w, b = np.asarray(v["params"]["fc8"]["kernel"]), np.asarray(v["params"]["fc8"]["bias"])
    h = np.linalg.lstsq(w.T, (fc8 - b).T, rcond=None)[0].T
    live = fc7 > 1e-3
    ratio = h[live] / fc7[live]
    assert np.allclose(np.minimum(np.abs(ratio), np.abs(ratio - 2)), 0, atol=1e-3)  # each 0 or 1 / 0.5
    assert 0.25 < np.mean(ratio < 1) < 0.75  # about half of them dropped


# ---------------------------------------------------------------- VGG

# Simonyan and Zisserman 2015, Table 1: 3x3 convolutions per stage in configurations A, B, D, E,
# maps 64, 128, 256, 512, 512; classifier 7x7x512 -> 4096 -> 4096 -> 1000.
VGG_CONFIGS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
CLASSIFIER = dense(7 * 7 * 512, 4096) + dense(4096, 4096) + dense(4096, 1000)  # 123,642,856


def vgg_arithmetic(stages, bn=False, kernel_plan="3x3"):
    total, cin = CLASSIFIER, 3
    for n, width in zip(stages, WIDTHS):
        kernels = [3] * n if kernel_plan == "3x3" else [2 * n + 1]
        for k in kernels:
            total += conv(k, cin, width) + (2 * width if bn else 0)  # BN scale and bias
            cin = width
    return total


# Table 2 of the paper gives 133, 133, 138, 144 million; torchvision's exact counts:
VGG_PUBLISHED = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
}


@pytest.mark.parametrize("name", sorted(VGG_PUBLISHED))
def test_vgg_counts(name):
    base = name.removesuffix("_bn")
    assert vgg_arithmetic(VGG_CONFIGS[base], bn=name.endswith("_bn")) == VGG_PUBLISHED[name]
    assert n_params(name) == VGG_PUBLISHED[name]


def test_vgg16_intermediate_shapes_and_names():
    s = jaxcnn.summary("vgg16")
    shapes = {r.name: r.output_shape for r in s.rows}
    assert [shapes[f"pool{i}"] for i in range(1, 6)] == [
        (112, 112, 64), (56, 56, 128), (28, 28, 256), (14, 14, 512), (7, 7, 512)]
    convs = [r.name for r in s.rows if r.layer_type == "Conv"]
    assert convs == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                     "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
    assert shapes["conv1_1"] == (224, 224, 64) and shapes["fc6"] == (4096,) and shapes["fc8"] == (1000,)


# VGG-16 (Simonyan & Zisserman 2015, Table 1 config D) layer by layer, as seed 001's table walks it. The notes
# slip in four places the library does not follow (docs/fidelity.md, "The seed notes' slips"): conv4_3 and conv5_1
# take 512 input maps, not 256 (2,359,808 parameters each, not 1,180,160); conv5_3's output is 14x14x512 (only
# pool5 makes it 7x7); there is no conv4_4; fc8 has 1,000 units, not 10,000.
VGG16_LAYERS = {
    "conv1_1": (conv(3, 3, 64), (224, 224, 64)), "conv1_2": (conv(3, 64, 64), (224, 224, 64)),
    "conv2_1": (conv(3, 64, 128), (112, 112, 128)), "conv2_2": (conv(3, 128, 128), (112, 112, 128)),
    "conv3_1": (conv(3, 128, 256), (56, 56, 256)), "conv3_2": (conv(3, 256, 256), (56, 56, 256)),
    "conv3_3": (conv(3, 256, 256), (56, 56, 256)),
    "conv4_1": (conv(3, 256, 512), (28, 28, 512)), "conv4_2": (conv(3, 512, 512), (28, 28, 512)),
    "conv4_3": (conv(3, 512, 512), (28, 28, 512)),                    # 2,359,808
    "conv5_1": (conv(3, 512, 512), (14, 14, 512)),                    # 2,359,808
    "conv5_2": (conv(3, 512, 512), (14, 14, 512)), "conv5_3": (conv(3, 512, 512), (14, 14, 512)),
    "fc6": (dense(7 * 7 * 512, 4096), (4096,)),                       # 102,764,544: the "7x7x512 kernel" of fc1
    "fc7": (dense(4096, 4096), (4096,)), "fc8": (dense(4096, 1000), (1000,)),   # 16,781,312 and 4,097,000
}


def test_vgg16_layer_by_layer():
    assert conv(3, 512, 512) == 2_359_808 and conv(3, 256, 512) == 1_180_160 and conv(3, 256, 256) == 590_080
    assert dense(7 * 7 * 512, 4096) == 102_764_544 and dense(4096, 1000) == 4_097_000
    assert sum(p for p, _ in VGG16_LAYERS.values()) == VGG_PUBLISHED["vgg16"]
    s = jaxcnn.summary("vgg16")
    got = {r.name: (r.params, r.output_shape) for r in s.rows if r.params}
    assert got == VGG16_LAYERS
    # dropout after fc6 and fc7 (the paper, sec. 3.1: "the first two fully-connected layers"), not fc7 alone
    names = [r.name for r in s.rows]
    assert [n for n in names[names.index("fc6"):] if n.startswith(("fc", "drop"))] == [
        "fc6", "drop6", "fc7", "drop7", "fc8"]


def test_vgg_large_kernel_plan():
    # Each stack of n 3x3 convolutions sees (2n+1)x(2n+1) (section 2.3): the "large" plan uses one
    # such convolution per stage, same maps and shapes, more parameters (vgg16: 5,5,7,7,7).
    for n in (1, 2, 3, 4):
        assert ops.receptive_field([(3, 1)] * n) == 2 * n + 1
    expected = vgg_arithmetic(VGG_CONFIGS["vgg16"], kernel_plan="large")
    assert expected == CLASSIFIER + conv(5, 3, 64) + conv(5, 64, 128) + conv(7, 128, 256) + conv(7, 256, 512) \
        + conv(7, 512, 512) == 144_727_144
    model = create_model("vgg16", kernel_plan="large")
    s = jaxcnn.summary(model, (224, 224, 3))
    assert s.trainable_params == expected
    assert [r.name for r in s.rows if r.layer_type == "Conv"] == [f"conv{i}_1" for i in range(1, 6)]
    assert [s.row(f"pool{i}").output_shape for i in range(1, 6)] == [
        (112, 112, 64), (56, 56, 128), (28, 28, 256), (14, 14, 512), (7, 7, 512)]
    with pytest.raises(ValueError, match="'3x3'"):
        jaxcnn.summary(create_model("vgg16", kernel_plan="5x5"), (224, 224, 3))


def test_minivgg_count():
    # 2 x conv32, pool, 2 x conv64, pool (8x8x64), fc 512, fc 10, BatchNorm (scale, bias) after each conv.
    expected = (conv(3, 3, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64)
                + 2 * (32 + 32 + 64 + 64) + dense(8 * 8 * 64, 512) + dense(512, 10))
    assert expected == 2_168_746
    assert n_params("minivgg") == expected
    assert default_input_shape("minivgg") == (32, 32, 3)


def test_minivgg_train_mode_uses_dropout_and_batch_stats():
    model = create_model("minivgg")
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 32, 32, 3)), jnp.float32)
    variables = jax.jit(model.init)(KEY, x)
    apply = jax.jit(lambda v, x, k: model.apply(v, x, train=True, rngs={"dropout": k}, mutable=["batch_stats"]))
    y1, new1 = apply(variables, x, jax.random.key(1, impl="rbg"))
    y2, _ = apply(variables, x, jax.random.key(2, impl="rbg"))
    assert not np.allclose(y1, y2)  # dropout is active
    assert not np.allclose(new1["batch_stats"]["bn1_1"]["mean"], variables["batch_stats"]["bn1_1"]["mean"])
    e1 = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    np.testing.assert_array_equal(e1, jax.jit(lambda v, x: model.apply(v, x))(variables, x))


# ---------------------------------------------------------------- small CNNs

def test_small_cnn_counts():
    # Seed 004's Keras table: 896 + 18,496 + 36,928 + 65,600 + 650.
    assert conv(3, 3, 32) + conv(3, 32, 64) + conv(3, 64, 64) + dense(4 * 4 * 64, 64) + dense(64, 10) == 122_570
    assert n_params("keras_cifar_cnn") == 122_570
    # Seed 004's SimpleConvNet: (25 + 1)*30 + (30*12*12 + 1)*100 + 101*10 = 780 + 432,100 + 1,010.
    assert conv(5, 1, 30) + dense(30 * 12 * 12, 100) + dense(100, 10) == 433_890
    assert n_params("simple_convnet") == 433_890
    s = jaxcnn.summary("simple_convnet")
    assert [r.output_shape for r in s.rows] == [(24, 24, 30), (12, 12, 30), (4320,), (100,), (10,)]


def test_fashion_cnn_counts_and_residual_blocks():
    # Convolutions without bias, each with BatchNorm's scale and offset (2 x channels); 28 -> 14 -> 7 -> 3.
    bn = lambda c: 2 * c  # noqa: E731
    plain = (3 * 3 * 1 * 32 + bn(32) + 3 * 3 * 32 * 64 + bn(64) + 3 * 3 * 64 * 128 + bn(128)
             + dense(3 * 3 * 128, 128) + dense(128, 10))
    assert plain == 241_770
    assert n_params("fashion_cnn") == plain
    # A residual block at width w: two 3x3 w->w convolutions without bias, two BatchNorms.
    block = lambda w: 2 * (3 * 3 * w * w + bn(w))  # noqa: E731
    assert n_params("fashion_cnn", res_blocks=(0, 0, 1)) == plain + block(128) == 537_194
    assert n_params("fashion_cnn", res_blocks=(1, 0, 2)) == plain + block(32) + 2 * block(128)
    # the blocks keep the pooled shapes: (0, 0, 1) ends at 3x3x128 as the plain net does
    s = jaxcnn.summary(create_model("fashion_cnn", res_blocks=(0, 0, 1)), (28, 28, 1))
    assert s.trainable_params == 537_194
    # pool_last=False: fc4 reads the whole 7x7x128 map instead of the pooled 3x3x128
    assert n_params("fashion_cnn", pool_last=False) == plain + (7 * 7 - 3 * 3) * 128 * 128 == 897_130
    with pytest.raises(ValueError, match=r"one count per stage.*res_blocks=\(0, 0, 1\)"):
        n_params("fashion_cnn", res_blocks=(1,))


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("name, small, expected", [
    ("alexnet", (1, 200, 200, 3), r"\(N, 227, 227, 3\)"),
    ("alexnet_owt", (1, 227, 227, 3), r"\(N, 224, 224, 3\)"),
    ("vgg16", (1, 32, 32, 3), r"\(N, 224, 224, 3\)"),
    ("lenet5", (1, 28, 28, 1), r"\(N, 32, 32, 1\)"),
    ("keras_cifar_cnn", (1, 16, 16, 3), r"\(N, 32, 32, 3\)"),
    ("minivgg", (1, 16, 16, 3), r"\(N, 32, 32, 3\)"),
])
def test_wrong_size_or_channels_names_the_expected_shape(name, small, expected):
    model = create_model(name)
    with pytest.raises(ValueError, match=expected):
        jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct(small, jnp.float32))
    h, w, c = default_input_shape(name)
    with pytest.raises(ValueError, match=expected):
        jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct((1, h, w, c + 1), jnp.float32))
    with pytest.raises(ValueError, match="rank 4"):
        jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct((h, w, c), jnp.float32))


# ---------------------------------------------------------------- convolution vs cross-correlation

def _flip_kernels(tree):
    """Every convolution kernel (HWIO, rank 4) reversed on its spatial axes."""
    def flip(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        return leaf[::-1, ::-1] if name.startswith("kernel") and leaf.ndim == 4 else leaf
    return jax.tree_util.tree_map_with_path(flip, tree)


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern", "keras_cifar_cnn", "simple_convnet", "minivgg"])
def test_convolution_mode_equals_cross_correlation_with_flipped_kernels(name):
    xc = create_model(name)
    cv = create_model(name, conv_mode="convolution")
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, *default_input_shape(name))), jnp.float32)
    variables = jax.jit(xc.init)(KEY, x)
    flipped = {**variables, "params": _flip_kernels(variables["params"])}
    y_xc = jax.jit(xc.apply)(variables, x)
    y_cv = jax.jit(cv.apply)(flipped, x)
    chex.assert_trees_all_close(y_xc, y_cv, rtol=1e-4, atol=1e-4)
    # And the two differ without the flip (the kernels are not symmetric).
    assert not np.allclose(y_xc, jax.jit(cv.apply)(variables, x), atol=1e-4)


def test_vgg_stage_entry_1x1_makes_the_kernel_plans_like_for_like():
    # With a 1x1 entry each stage's stack maps C to C: two 3x3 hold 2 * 9 * C^2 weights, one 5x5 25 * C^2
    # (Simonyan & Zisserman sec. 2.3, seed 001), plus the same 1x1 entry (C_in * C + C) in both arms.
    rows = {}
    for plan in ("3x3", "large"):
        s = jaxcnn.summary(create_model("minivgg", stage_entry="1x1", kernel_plan=plan), (32, 32, 3))
        rows[plan] = {r.name: r.params for r in s.rows if r.name.startswith("conv")}
    for stage, c, c_in in ((1, 32, 3), (2, 64, 32)):
        assert rows["3x3"][f"conv{stage}_0"] == rows["large"][f"conv{stage}_0"] == c_in * c + c
        assert rows["3x3"][f"conv{stage}_1"] + rows["3x3"][f"conv{stage}_2"] == 18 * c * c + 2 * c
        assert rows["large"][f"conv{stage}_1"] == 25 * c * c + c
    with pytest.raises(ValueError, match="unknown stage_entry '3x3'"):
        jaxcnn.summary(create_model("minivgg", stage_entry="3x3"), (32, 32, 3))


def test_small_cnn_activation_switch():
    x = jnp.ones((2, 32, 32, 3))
    relu = create_model("keras_cifar_cnn")
    tanh = create_model("keras_cifar_cnn", activation="tanh")
    v = relu.init(jax.random.key(0), x)
    assert jaxcnn.count_params(v) == 122_570  # the switch adds no parameters
    assert not np.allclose(relu.apply(v, x), tanh.apply(v, x))
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'; allowed: 'relu', 'tanh'"):
        create_model("keras_cifar_cnn", activation="sigmoid").init(jax.random.key(0), x)
