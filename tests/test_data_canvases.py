"""The garment canvases (jaxcnn.data.canvases) and their selective-search proposals: deterministic from the
seed, boxes and masks consistent with the drawn garments, served by datasets.load by name."""

import dataclasses

import numpy as np
import pytest

from jaxcnn.data import canvases, datasets, proposals

TINY = canvases.CONFIGS["tiny"]


@pytest.fixture(scope="module")
def garments():
    rng = np.random.default_rng(0)
    g = np.zeros((20, 28, 28, 1), np.uint8)
    for i in range(20):  # filled rectangles of random size: their drawn extent is known exactly
        h, w = rng.integers(8, 28, 2)
        y, x = rng.integers(0, 28 - h + 1), rng.integers(0, 28 - w + 1)
        g[i, y:y + h, x:x + w] = 200
    return g, np.arange(20, dtype=np.uint8) % 10


def test_deterministic_from_seed(garments):
    g, l = garments
    cfg = dataclasses.replace(TINY, train_count=12)
    a = canvases.draw_canvases(cfg, "train", g, l)
    b = canvases.draw_canvases(cfg, "train", g, l)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = canvases.draw_canvases(dataclasses.replace(cfg, seed=1), "train", g, l)
    assert not np.array_equal(a[0], c[0])
    t = canvases.draw_canvases(dataclasses.replace(cfg, test_count=12), "test", g, l)
    assert not np.array_equal(a[0], t[0])  # the test split is another stream


def test_boxes_and_masks_match_the_drawn_garments(garments):
    g, l = garments
    images, boxes, classes, masks = canvases.draw_canvases(dataclasses.replace(TINY, train_count=40), "train", g, l)
    assert images.shape == (40, 64, 64, 1) and images.dtype == np.uint8
    assert boxes.shape == (40, 5, 4) and classes.shape == (40, 5) and masks.shape == (40, 64, 64)
    counts = (classes >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 5
    hidden = []
    for i in range(40):
        n = counts[i]
        assert (classes[i, n:] == -1).all() and (boxes[i, n:] == 0).all()  # padding after the objects
        covered = np.zeros((64, 64), bool)
        for k in range(n):
            x1, y1, x2, y2 = boxes[i, k].astype(int)
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            inside = masks[i, y1:y2, x1:x2] == classes[i, k] + 1
            if not inside.any():  # hidden: a later, larger garment covers it (IoU <= 0.3 allows it)
                later = [canvases._iou(boxes[i, k], boxes[i, m]) > 0 for m in range(k + 1, n)]
                assert any(later)
                hidden.append((i, k))
            covered[y1:y2, x1:x2] = True
            for m in range(k):  # no two boxes overlap more than MAX_IOU
                assert canvases._iou(boxes[i, k], boxes[i, m]) <= canvases.MAX_IOU + 1e-6
        assert not (masks[i][~covered] > 0).any()  # every garment pixel lies in some box
        # the last garment is drawn on top: its mask fills its box edge to edge (tight box of a rectangle)
        x1, y1, x2, y2 = boxes[i, n - 1].astype(int)
        own = masks[i, y1:y2, x1:x2] == classes[i, n - 1] + 1
        assert own[0].any() and own[-1].any() and own[:, 0].any() and own[:, -1].any()
    assert len(hidden) <= 0.05 * counts.sum()
    # garment pixels are bright where the mask says so, background elsewhere below the garment's grey
    assert images[..., 0][masks > 0].mean() > images[..., 0][masks == 0].mean() + 50


def test_tfds_builder_round_trip_and_names():
    det = datasets.load("fashion_mnist_detection_tiny", "train")
    seg = datasets.load("fashion_mnist_segmentation_tiny", "test")
    assert len(det) == 64 and len(seg) == 32 and det.num_classes == 10 and seg.num_classes == 11
    assert set(det.labels) == {"boxes", "classes"}
    assert det.labels["boxes"].dtype == np.float32 and det.labels["classes"].dtype == np.int32
    assert seg.labels.shape == (32, 64, 64) and seg.labels.dtype == np.int32 and seg.labels.max() <= 10
    # the builder stores exactly what draw_canvases draws, in TFDS's fixed (key-hash) order
    images, boxes, classes, masks = canvases.draw_canvases(TINY, "train")
    where = [int(np.flatnonzero((images == det.images[i]).all(axis=(1, 2, 3)))[0]) for i in range(len(det))]
    assert sorted(where) == list(range(64))
    np.testing.assert_array_equal(det.labels["boxes"], boxes[where])
    np.testing.assert_array_equal(det.labels["classes"], classes[where])
    seg_train = datasets.load("fashion_mnist_segmentation_tiny", "train")
    np.testing.assert_array_equal(seg_train.labels, masks[where])
    images = det.images
    part = datasets.load("fashion_mnist_detection_tiny", "train[10:20]")
    np.testing.assert_array_equal(part.images, images[10:20])
    batch = det.take(np.array([3, 5]))
    assert batch["label"]["boxes"].shape == (2, 5, 4)
    with pytest.raises(ValueError, match="no split"):
        datasets.load("fashion_mnist_detection_tiny", "validation")


def test_identity_of_the_canvases_is_asked_of_the_dataset_registry():
    """What a workdir records of a dataset held whole by its own module comes from that module, found through
    the registry (not from the name's prefix): the canvases fingerprint their prepared files."""
    from jaxcnn.data import registry
    from jaxcnn.data.identity import identity

    assert registry.identifier("fashion_mnist_detection_tiny") is canvases.identity
    det, seg = identity("fashion_mnist_detection_tiny"), identity("fashion_mnist_segmentation_tiny")
    assert det["dataset"] == "fashion_mnist_detection_tiny" and seg["dataset"] == "fashion_mnist_segmentation_tiny"
    assert det["class_names"] == list(canvases.CLASS_NAMES)
    assert seg["class_names"] == ["background"] + list(canvases.CLASS_NAMES)
    assert det["splits"] == seg["splits"] == {"test": TINY.test_count, "train": TINY.train_count}
    assert det["fingerprint"] == seg["fingerprint"] == identity("fashion_mnist_detection_tiny")["fingerprint"]

    said = {"class_names": ["a", "b"], "splits": {"train": 3}, "fingerprint": "sha256:0"}
    registry.register_dataset("demo_whole", "whole", lambda name, split, data_dir: None,
                              identity=lambda name, data_dir: said)
    registry.register_dataset("demo_whole_unsaid", "whole", lambda name, split, data_dir: None)
    try:
        assert identity("demo_whole") == {"dataset": "demo_whole", **said}
        assert identity("demo_whole_unsaid") == {"dataset": "demo_whole_unsaid"}  # nothing to compare: the name
        with pytest.raises(ValueError, match="only a whole dataset takes identity="):
            registry.register_dataset("demo_drawn", "generated", lambda *a, **k: None, identity=lambda *a: said)
    finally:
        for name in ("demo_whole", "demo_whole_unsaid"):
            registry._DATASETS.pop(name)
            registry._IDENTITIES.pop(name, None)


def test_selective_search_proposals_cached():
    det = datasets.load("fashion_mnist_detection_tiny_ss", "test[:8]")
    p = det.labels["proposals"]
    assert p.shape == (8, proposals.MAX_PROPOSALS, 4) and p.dtype == np.float32
    ok = (p[..., 2] > p[..., 0])
    assert ok.sum(1).min() > 5
    w, h = p[..., 2] - p[..., 0], p[..., 3] - p[..., 1]
    assert (w[ok] >= proposals.MIN_SIDE).all() and (h[ok] >= proposals.MIN_SIDE).all()
    assert (p[ok] >= 0).all() and (p[ok] <= 64).all()
    assert (p[~ok] == 0).all()
    again = datasets.load("fashion_mnist_detection_tiny_ss", "test[2:6]")  # from the cache, the same rows
    np.testing.assert_array_equal(again.labels["proposals"], p[2:6])
    assert proposals.parse_split("train[:3000]", 20000) == ("train", 0, 3000)
    assert proposals.parse_split("test", 2000) == ("test", 0, 2000)


def test_rcnn_regions_and_warp():
    img = np.zeros((1, 8, 8, 1), np.uint8)
    img[0, 2:6, 2:6] = 100
    # a box exactly on the square, warped to 8x8 with no context: 100 inside (bilinear, half-pixel centres: the
    # outermost samples sit a quarter pixel outside the square and blend 3/4 of it with the mean-filled rim)
    crop = proposals.warp_crops(img, np.array([0]), np.array([[2, 2, 6, 6]], np.float32), size=8, context=0)
    np.testing.assert_array_equal(crop[0, 1:-1, 1:-1, 0], 100)
    assert crop[0, 0, 3, 0] == 75
    crop = proposals.warp_crops(img, np.array([0]), np.array([[2, 2, 6, 6]], np.float32), size=8, context=2)
    assert crop[0, 0, 0, 0] < 100 and crop[0, 4, 4, 0] == 100
    boxes = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]]], np.float32)
    classes = np.array([[3, -1]], np.int32)
    props = np.array([[[0, 0, 10, 9], [0, 0, 20, 20], [40, 40, 50, 50], [30, 30, 45, 45], [0, 0, 0, 0]]], np.float32)
    idx, regions, labels = proposals.rcnn_regions(boxes[:, :1].repeat(1, 0), classes[:, :1], props, bg_per_fg=3)
    # candidates: 4 proposals + the ground truth; IoU >= 0.5: proposal 0 (0.9) and the ground truth
    assert sorted(labels.tolist()) == [0, 0, 0, 4, 4]
