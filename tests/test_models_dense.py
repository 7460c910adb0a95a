"""Dense-prediction models: FCN, SegNet, YOLOv1, SPP-net, Fast R-CNN.

Large models are only traced (jax.eval_shape); parameter counts are derived
layer by layer below from the papers' architectures.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.models.detection import truncated_svd_params
from jaxcnn.models import detection
from jaxcnn.models import fcn as fcn_mod


def conv(k, i, o, bias=True):
    return k * k * i * o + (o if bias else 0)


VGG16 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
         (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
VGG16_CONVS = sum(conv(3, i, o) for i, o in VGG16)


def shapes(model, x_shape, **kw):
    x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x_shape), **kw))
    return variables, jax.eval_shape(lambda v, x: model.apply(v, x, **kw), variables, x)


def test_vgg16_conv_arithmetic():
    assert VGG16_CONVS == 14_714_688


@pytest.mark.parametrize("name,extra,learned_2x", [
    ("fcn32s", 0, 0),
    ("fcn16s", 512 * 21 + 21, 1),                           # score_pool4; upscore2
    ("fcn8s", 512 * 21 + 21 + 256 * 21 + 21, 2),            # + score_pool3; + upscore_pool4
])
def test_fcn_param_counts(name, extra, learned_2x):
    # Long et al. 2015 / voc-fcn8s: VGG16 convs + fc6 (7x7x512x4096) + fc7 (1x1x4096x4096) + score_fr
    common = VGG16_CONVS + conv(7, 512, 4096) + conv(1, 4096, 4096) + conv(1, 4096, 21)
    variables, out = shapes(jaxcnn.create_model(name, upsampling="fixed"), (1, 500, 500, 3))
    assert jaxcnn.count_params(variables) == common + extra
    assert out.shape == (1, 500, 500, 21)
    if name == "fcn8s":
        assert common + extra == 134_362_751
    # The paper's upsampling (sec. 4.3): each intermediate 2x layer (4x4x21x21, no bias) is learned, the final
    # one is a fixed constant.
    variables, _ = shapes(jaxcnn.create_model(name), (1, 64, 64, 3))
    assert jaxcnn.count_params(variables) == common + extra + learned_2x * 4 * 4 * 21 * 21
    assert "upscore" not in variables["params"]


def test_fcn_learned_upsampling_counts():
    # upscore2, upscore_pool4 (4x4x21x21 each) and upscore (16x16x21x21), no bias
    variables, _ = shapes(jaxcnn.create_model("fcn8s", upsampling="learned"), (1, 64, 64, 3))
    assert jaxcnn.count_params(variables) == 134_362_751 + 2 * 4 * 4 * 21 * 21 + 16 * 16 * 21 * 21
    with pytest.warns(DeprecationWarning, match="upsampling='learned'"):
        old, _ = shapes(jaxcnn.create_model("fcn8s", learn_upsampling=True), (1, 64, 64, 3))
    assert jaxcnn.count_params(old) == jaxcnn.count_params(variables)
    with pytest.raises(ValueError, match="upsampling"):
        shapes(jaxcnn.create_model("fcn8s", upsampling="bilinear"), (1, 64, 64, 3))


def test_fcn_initialisation_as_the_paper():
    # Score layers and their biases start at zero; the 2x layers start as bilinear interpolation.
    small = dict(widths=((4,), (4,), (4,), (8,), (8,)), fc_width=8, fc6_kernel=3, pad=17, num_classes=3,
                 in_channels=1)
    model = jaxcnn.create_model("fcn8s", **small)
    v = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 1)))["params"]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert not np.any(v[name]["kernel"]) and not np.any(v[name]["bias"]), name
    assert np.any(v["fc7"]["kernel"])
    # bilinear 4x4 (factor 2, centre 1.5): weights 1 - |i - 1.5| / 2 = (0.25, 0.75, 0.75, 0.25) per axis, per class
    tap = np.array([0.25, 0.75, 0.75, 0.25])
    for name in ("upscore2", "upscore_pool4"):
        k = np.asarray(v[name]["kernel"])
        np.testing.assert_allclose(k[:, :, 1, 1], np.outer(tap, tap))
        assert not np.any(k[:, :, 0, 1])  # each class upsampled on its own
    # A net with zero score layers outputs zero logits at the start (uniform over the classes).
    out = jax.jit(model.apply)({"params": v}, jax.random.normal(jax.random.key(1), (1, 64, 64, 1)))
    assert not np.any(out)
    v = jax.eval_shape(jaxcnn.create_model("fcn8s", zero_score=False, **small).init, jax.random.key(0),
                       jnp.zeros((1, 64, 64, 1)))
    assert "score_fr" in v["params"]


@pytest.mark.parametrize("hw", [(1, 1), (33, 47), (224, 224), (375, 500)])
@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_fcn_output_is_input_size(variant, hw):
    _, out = shapes(jaxcnn.create_model(f"fcn{variant}", num_classes=5), (2, *hw, 3))
    chex.assert_shape(out, (2, *hw, 5))


def test_bilinear_kernel_and_upsampling():
    k = fcn_mod.bilinear_kernel(4, 2)
    f = np.array([0.25, 0.75, 0.75, 0.25])   # 1 - |i - 1.5| / 2
    np.testing.assert_allclose(k[:, :, 0, 0], np.outer(f, f))
    np.testing.assert_array_equal(k[:, :, 0, 1], 0)
    # a constant map stays constant (away from the border) under x2 bilinear upsampling
    x = jnp.full((1, 5, 5, 2), 3.0)
    y = fcn_mod.fcn_conv_transpose(x, k, 2)
    assert y.shape == (1, (5 - 1) * 2 + 4, 12, 2)
    np.testing.assert_allclose(y[0, 2:-2, 2:-2], 3.0, rtol=1e-6)
    # a ramp is interpolated linearly: interior samples at half-steps
    ramp = jnp.arange(4.0)[None, :, None, None] * jnp.ones((1, 4, 4, 1))
    up = fcn_mod.fcn_conv_transpose(ramp, fcn_mod.bilinear_kernel(4, 1), 2)[0, 2:-2, 4, 0]
    np.testing.assert_allclose(up, [0.25, 0.75, 1.25, 1.75, 2.25, 2.75], rtol=1e-6)


def test_segnet_counts_and_shapes():
    variables, out = shapes(jaxcnn.create_model("segnet"), (1, 360, 480, 3))
    chex.assert_shape(out, (1, 360, 480, 12))
    # encoder = VGG16 convs + BN (2 params per channel); decoder mirrors it, conv1_1_D -> 12 classes
    enc = VGG16_CONVS + 2 * sum(o for _, o in VGG16)
    dec_layers = [(512, 512)] * 3 + [(512, 512), (512, 512), (512, 256), (256, 256), (256, 256), (256, 128),
                                     (128, 128), (128, 64), (64, 64)]
    dec = sum(conv(3, i, o) + 2 * o for i, o in dec_layers) + conv(3, 64, 12)
    assert jaxcnn.count_params(variables) == enc + dec


def test_segnet_small_runs_and_odd_sizes():
    model = jaxcnn.create_model("segnet_small")
    x = jax.random.normal(jax.random.key(0), (2, 40, 36, 3))
    variables = model.init(jax.random.key(1), x)
    # (1, 2, 2) stages of widths (16, 32, 64): encoder 5 convs, decoder 5 convs, the last -> 4 classes
    enc = [(3, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    dec = [(64, 64), (64, 32), (32, 32), (32, 16)]
    want = sum(conv(3, i, o) + 2 * o for i, o in enc + dec) + conv(3, 16, 4)
    assert jaxcnn.count_params(variables) == want
    y, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    chex.assert_shape(y, (2, 40, 36, 4))
    chex.assert_tree_all_finite(y)
    _, out = shapes(model, (1, 45, 51, 3))   # sizes not divisible by 8
    chex.assert_shape(out, (1, 45, 51, 4))
    with pytest.raises(ValueError, match="at least 8x8"):
        model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 3)))


def test_yolov1_params_layer_by_layer():
    # Redmon et al. 2016, figure 3. Convs as (kernel, in, out).
    convs = [(7, 3, 64), (3, 64, 192),
             (1, 192, 128), (3, 128, 256), (1, 256, 256), (3, 256, 512),
             *[(1, 512, 256), (3, 256, 512)] * 4, (1, 512, 512), (3, 512, 1024),
             *[(1, 1024, 512), (3, 512, 1024)] * 2, (3, 1024, 1024), (3, 1024, 1024),
             (3, 1024, 1024), (3, 1024, 1024)]
    assert len(convs) == 24
    conv_total = sum(conv(k, i, o) for k, i, o in convs)
    assert conv_total == 60_155_968
    fc1 = 7 * 7 * 1024 * 4096 + 4096        # 205,524,992
    fc2 = 4096 * (7 * 7 * 30) + 7 * 7 * 30  # 6,022,590
    assert conv_total + fc1 + fc2 == 271_703_550
    variables, out = shapes(jaxcnn.create_model("yolov1"), (1, 448, 448, 3))
    assert jaxcnn.count_params(variables) == 271_703_550
    assert len([k for k in variables["params"] if k.startswith("conv")]) == 24
    chex.assert_shape(out, (1, 7, 7, 30))


def test_yolov1_tiny_runs():
    model = jaxcnn.create_model("yolov1_tiny")
    x = jax.random.normal(jax.random.key(0), (2, 112, 112, 3))
    variables = model.init(jax.random.key(1), x)
    y = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    chex.assert_shape(y, (2, 7, 7, 30))
    with pytest.raises(ValueError, match="112x112"):
        model.apply(variables, jnp.zeros((1, 64, 64, 3)))


def _hand_example():
    # S=2, B=2, C=2. One object whose centre is in cell (row 0, col 1):
    # x = y = 0.5 in the cell, w = h = 0.25 of the image, class 1.
    # Image box: centre ((1 + .5)/2, (0 + .5)/2) = (0.75, 0.25) -> [0.625, 0.125, 0.875, 0.375].
    target = np.zeros((1, 2, 2, 7), np.float32)
    target[0, 0, 1] = [0.5, 0.5, 0.25, 0.25, 1, 0, 1]
    pred = np.zeros((1, 2, 2, 12), np.float32)
    # box 0: x=0.6 (centre 0.8), sqrt w = sqrt h = 0.5 (w=h=0.25) -> [0.675, .125, .925, .375]
    #   intersection 0.2 * 0.25 = 0.05, union 0.0625 * 2 - 0.05 = 0.075, IoU = 2/3
    # box 1: centred, sqrt w = sqrt h = 0.4 (w=h=0.16): inside the truth, IoU = 0.0256/0.0625 = 0.4096
    pred[0, 0, 1] = [0.6, 0.5, 0.5, 0.5, 0.8, 0.5, 0.5, 0.4, 0.4, 0.4, 0.3, 0.6]
    pred[0, 0, 0, [4, 9]] = [0.1, 0.2]     # confidences in empty cells
    pred[0, 1, 0, [4, 9]] = [0.0, 0.3]
    pred[0, 1, 1, 10:] = [0.9, 0.9]        # class scores of empty cells: ignored
    return jnp.asarray(pred), jnp.asarray(target)


def test_yolo_loss_hand_worked():
    pred, target = _hand_example()
    t = detection.yolo_loss_terms(pred, target)
    # responsible: box 0 (IoU 2/3 > 0.4096)
    np.testing.assert_allclose(t["coord"], 5 * (0.6 - 0.5) ** 2, rtol=1e-5)         # 0.05
    np.testing.assert_allclose(t["obj"], (0.8 - 2 / 3) ** 2, rtol=1e-5)             # 0.017778
    np.testing.assert_allclose(t["noobj"], 0.5 * (0.4**2 + 0.1**2 + 0.2**2 + 0.3**2), rtol=1e-5)  # 0.15
    np.testing.assert_allclose(t["cls"], 0.3**2 + (0.6 - 1) ** 2, rtol=1e-5)        # 0.25
    np.testing.assert_allclose(detection.yolo_loss(pred, target), 0.05 + 0.0177778 + 0.15 + 0.25, rtol=1e-5)
    # confidence target 1 instead of the IoU: obj = (0.8 - 1)^2 = 0.04
    np.testing.assert_allclose(detection.yolo_loss(pred, target, rescore=False), 0.49, rtol=1e-5)
    # the batch mean: two copies give the same loss
    np.testing.assert_allclose(detection.yolo_loss(jnp.concatenate([pred] * 2), jnp.concatenate([target] * 2)),
                               detection.yolo_loss(pred, target), rtol=1e-6)
    g = jax.grad(detection.yolo_loss)(pred, target)
    chex.assert_tree_all_finite(g)
    np.testing.assert_allclose(g[0, 0, 1, 0], 5 * 2 * 0.1, rtol=1e-5)   # d coord / d x of box 0
    with pytest.raises(ValueError, match="target"):
        detection.yolo_loss(pred, target[..., :6])


def test_nms_hand_case():
    boxes = jnp.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3], [0.05, 0, 1.05, 1]], jnp.float32)
    scores = jnp.array([0.9, 0.8, 0.7, 0.5])
    # IoU(A, B) = 0.9 / 1.1 = 0.82 > 0.5: B suppressed by A; D overlaps A too
    np.testing.assert_array_equal(detection.nms(boxes, scores, 0.5), [True, False, True, False])
    # per class: D (class 1) survives A (class 0)
    classes = jnp.array([0, 0, 0, 1])
    np.testing.assert_array_equal(detection.nms(boxes, scores, 0.5, classes=classes), [True, False, True, True])
    np.testing.assert_array_equal(jax.jit(detection.nms)(boxes, scores, 0.5, 0.75), [True, False, False, False])
    # IoU(A, B) = 0.82 < 0.9 keeps B; IoU(A, D) = 0.95 / 1.05 = 0.905 > 0.9 removes D
    np.testing.assert_array_equal(detection.nms(boxes, scores, 0.9), [True, True, True, False])
    # a box suppressed itself suppresses nothing: E overlaps B (IoU 0.5/1.5 = 0.33) but A only 0.4/1.6 = 0.25
    chain = jnp.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [0.6, 0, 1.6, 1]], jnp.float32)
    np.testing.assert_array_equal(detection.nms(chain, jnp.array([0.9, 0.8, 0.7]), 0.3), [True, False, True])


def test_decode_yolo():
    pred, _ = _hand_example()
    out = jax.jit(detection.decode_yolo)(pred)
    chex.assert_shape(out["boxes"], (1, 8, 4))
    # cell (0,1) is flattened index 1, its boxes are 2 and 3
    np.testing.assert_allclose(out["boxes"][0, 2], [0.675, 0.125, 0.925, 0.375], rtol=1e-5)
    np.testing.assert_allclose(out["scores"][0, 2:4], [0.8 * 0.6, 0.4 * 0.6], rtol=1e-5)
    # box 3 (score 0.24) is [0.67, 0.17, 0.83, 0.33], box 2 [0.675, 0.125, 0.925, 0.375]: intersection
    # 0.155 * 0.16 = 0.0248, union 0.0256 + 0.0625 - 0.0248 = 0.0633, IoU 0.392 < 0.5, so both survive at 0.5 ...
    assert bool(out["keep"][0, 2]) and bool(out["keep"][0, 3])
    # ... and at IoU threshold 0.3 (< 0.392) box 3 is suppressed; every other box scores below 0.2
    keep = detection.decode_yolo(pred, iou_threshold=0.3)["keep"][0]
    np.testing.assert_array_equal(keep, [False, False, True, False, False, False, False, False])


@pytest.mark.parametrize("hw", [(224, 224), (180, 260)])
def test_spp_net_any_size(hw):
    # VGG16 convs + fc6 on 512 * (36 + 9 + 4 + 1) = 512 * 50 pyramid bins ({6, 3, 2, 1}, He et al.) + fc7 + fc8
    variables, out = shapes(jaxcnn.create_model("spp_net"), (2, *hw, 3))
    chex.assert_shape(out, (2, 1000))
    want = VGG16_CONVS + (512 * 50 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert jaxcnn.count_params(variables) == want
    # the former default pyramid (1, 2, 4), 21 bins, stays an option
    variables, _ = shapes(jaxcnn.create_model("spp_net", levels=(1, 2, 4)), (2, *hw, 3))
    assert jaxcnn.count_params(variables) == want - 512 * (50 - 21) * 4096


def test_spp_net_small_same_params_for_any_size():
    model = jaxcnn.create_model("spp_net", stage_sizes=(1, 1), widths=(4, 8), hidden=16, num_classes=3)
    v1 = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    for hw in [(16, 16), (23, 31)]:
        y = model.apply(v1, jax.random.normal(jax.random.key(1), (2, *hw, 3)))
        chex.assert_shape(y, (2, 3))


def test_fast_rcnn():
    variables, (cls, bbox) = shapes(jaxcnn.create_model("fast_rcnn"), (1, 224, 224, 3))
    chex.assert_shape(cls, (1, 21))
    chex.assert_shape(bbox, (1, 84))
    want = VGG16_CONVS + (7 * 7 * 512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 21 + 21) + (4096 * 84 + 84)
    assert jaxcnn.count_params(variables) == want
    small = jaxcnn.create_model("fast_rcnn", stage_sizes=(1, 1), widths=(4, 8), hidden=16, num_classes=3,
                                roi_size=2, spatial_scale=0.5)
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    v = small.init(jax.random.key(1), x)
    boxes = jnp.array([[0, 0, 0, 15, 15], [1, 2, 2, 9, 7], [1, 8, 8, 15, 15]], jnp.float32)
    cls, bbox = jax.jit(small.apply)(v, x, boxes)
    chex.assert_shape((cls, bbox), ((3, 3), (3, 12)))
    # boxes=None is one whole-image box per image
    np.testing.assert_allclose(small.apply(v, x)[0][0], cls[0], rtol=1e-5)


def test_fcn_crop_offsets_from_coordinate_maps():
    # the reference nets' offsets follow from pad 100 and the 7x7 fc6
    assert fcn_mod.crop_offsets("32s") == {"final": 19}
    assert fcn_mod.crop_offsets("16s") == {"pool4": 5, "final": 27}
    assert fcn_mod.crop_offsets("8s") == {"pool4": 5, "pool3": 9, "final": 31}
    # the CPU-sized nets of experiments/configs/fcn*.py: pad 17, 3x3 fc6, narrow widths, output at input size
    small = dict(widths=((8, 8), (16, 16), (16, 16, 16), (32, 32, 32), (32, 32, 32)), fc_width=64, fc6_kernel=3,
                 pad=17, num_classes=11, in_channels=1, weight_init="he")
    for v in ("32s", "16s", "8s"):
        _, out = shapes(jaxcnn.create_model(f"fcn{v}", **small), (2, 64, 64, 1))
        chex.assert_shape(out, (2, 64, 64, 11))
    with pytest.raises(ValueError, match="not whole non-negative|cannot be cropped"):
        shapes(jaxcnn.create_model("fcn32s", **dict(small, pad=8)), (1, 64, 64, 1))


def test_fast_rcnn_spp_region_pool():
    small = jaxcnn.create_model("fast_rcnn", stage_sizes=(1, 1), widths=(4, 8), hidden=16, num_classes=3,
                                spatial_scale=0.5, region_pool="spp", spp_levels=(1, 2))
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    v = small.init(jax.random.key(1), x)
    assert v["params"]["fc6"]["kernel"].shape == (8 * (1 + 4), 16)  # the pyramid's 5 bins x 8 channels
    boxes = jnp.array([[0, 0, 0, 15, 15], [1, 2, 2, 9, 7]], jnp.float32)
    (cls, bbox), state = small.apply(v, x, boxes, mutable=["intermediates"])
    chex.assert_shape((cls, bbox), ((2, 3), (2, 12)))
    assert state["intermediates"]["fc7_features"][0].shape == (2, 16)
    with pytest.raises(ValueError, match="region_pool"):
        jaxcnn.create_model("fast_rcnn", region_pool="align").init(jax.random.key(0), x)


def test_fast_rcnn_trunk_pools_give_a_finer_map_with_the_same_weights():
    fields = dict(stage_sizes=(1, 1, 1, 1), widths=(4, 8, 8, 16), hidden=16, num_classes=3, roi_size=2)
    x = jax.random.normal(jax.random.key(0), (1, 32, 32, 1))
    boxes = jnp.array([[0, 4, 4, 27, 19]], jnp.float32)
    coarse = jaxcnn.create_model("fast_rcnn", **fields, spatial_scale=0.125, in_channels=1)
    fine = jaxcnn.create_model("fast_rcnn", **fields, spatial_scale=0.25, trunk_pools=2, in_channels=1)
    v = coarse.init(jax.random.key(1), x, boxes)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(fine.init(jax.random.key(1), x, boxes))
    # the feature maps: 32 / 2**3 = 4 cells a side with every pooling, 32 / 2**2 = 8 with two
    _, cs = coarse.apply(v, x, boxes, capture_intermediates=True, mutable=["intermediates"])
    _, fs = fine.apply(v, x, boxes, capture_intermediates=True, mutable=["intermediates"])
    assert cs["intermediates"]["conv4_1"]["__call__"][0].shape == (1, 4, 4, 16)
    assert fs["intermediates"]["conv4_1"]["__call__"][0].shape == (1, 8, 8, 16)
    with pytest.raises(ValueError, match=r"does not match the feature map's stride 4 .*spatial_scale=0.25"):
        jaxcnn.create_model("fast_rcnn", **fields, spatial_scale=0.125, trunk_pools=2).init(
            jax.random.key(1), jnp.zeros((1, 32, 32, 3)), boxes)
    with pytest.raises(ValueError, match=r"trunk_pools must be -1 \(all\) or 0..3"):
        jaxcnn.create_model("fast_rcnn", **fields, spatial_scale=0.125, trunk_pools=4).init(
            jax.random.key(1), jnp.zeros((1, 32, 32, 3)), boxes)


def test_fast_rcnn_heads_start_as_the_paper():
    # Girshick 2015, sec. 2.3: cls_score from N(0, 0.01), bbox_pred from N(0, 0.001), biases 0.
    model = jaxcnn.create_model("fast_rcnn", stage_sizes=(1, 1), widths=(4, 8), hidden=256, num_classes=21,
                                roi_size=2, spatial_scale=0.5)
    v = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    for name, std in (("cls_score", 0.01), ("bbox_pred", 0.001)):
        k = np.asarray(v[name]["kernel"])  # 5,376 and 21,504 draws: their std within 5%
        assert abs(k.std() / std - 1) < 0.05 and abs(k.mean()) < 3 * std / np.sqrt(k.size), name
        assert not np.any(v[name]["bias"])


def test_fast_rcnn_truncated_svd():
    # Sec. 3.1: W (u x v) ~ U_t S_t V_t^T: u*v parameters become t*(u + v). VGG16's fc6 (25,088 -> 4,096) at
    # t = 1024 and fc7 (4,096 -> 4,096) at t = 256, the paper's ranks.
    dense, _ = shapes(jaxcnn.create_model("fast_rcnn"), (1, 224, 224, 3))
    svd, _ = shapes(jaxcnn.create_model("fast_rcnn", svd_ranks=(1024, 256)), (1, 224, 224, 3))
    fc6, fc7 = 25_088 * 4096, 4096 * 4096
    assert jaxcnn.count_params(dense) - jaxcnn.count_params(svd) == (
        fc6 - 1024 * (25_088 + 4096)) + (fc7 - 256 * (4096 + 4096)) == 87_556_096
    # At full rank the two factor layers reproduce the dense ones.
    kw = dict(stage_sizes=(1, 1), widths=(4, 8), hidden=16, num_classes=3, roi_size=2, spatial_scale=0.5)
    model = jaxcnn.create_model("fast_rcnn", **kw)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    v = jax.jit(model.init)(jax.random.key(0), x)
    full = jaxcnn.create_model("fast_rcnn", svd_ranks=(16, 16), **kw)  # fc6 takes 2*2*8 = 32 inputs: rank 16
    p = truncated_svd_params(v["params"], (16, 16))
    chex.assert_trees_all_close(jax.jit(full.apply)({"params": p}, x), jax.jit(model.apply)(v, x), atol=1e-4)
    # Lower ranks approximate: the rank-8 outputs differ, and the factor shapes are (in, k) and (k, out).
    p8 = truncated_svd_params(v["params"], (8, 8))
    assert p8["fc6_svd"]["kernel"].shape == (32, 8) and p8["fc6"]["kernel"].shape == (8, 16)
    with pytest.raises(ValueError, match="rank must be in 1..16"):
        truncated_svd_params(v["params"], (17, 8))
