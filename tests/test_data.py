"""Data: the offline Fashion-MNIST TFDS builder, augmentation, batch order and sharding."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.data import (augment, batch_indices, check_divisible, datasets, process_slice, split_for_devices)
from jaxcnn.data.fashion_mnist import DEBIAN_DIR, FashionMnistOffline, read_idx

needs_files = pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_DIR, "t10k-labels-idx1-ubyte.gz")),
                                 reason="apt-get install dataset-fashion-mnist")


@needs_files
@pytest.mark.slow
def test_offline_fashion_mnist_through_tfds_without_tensorflow():
    test = datasets.load("fashion_mnist_offline", "test")
    # Xiao et al. 2017: 10,000 test images of 28x28, 1,000 of each of 10 classes.
    assert test.images.shape == (10000, 28, 28, 1) and test.images.dtype == np.uint8
    assert test.num_classes == 10
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
    # Same examples as the original files (TFDS stores them in its own order).
    images, labels = read_idx("test")
    as_set = lambda x, y: sorted(x[i].tobytes() + bytes([int(y[i])]) for i in range(len(y)))
    assert as_set(test.images, test.labels) == as_set(images, labels)
    builder = FashionMnistOffline(data_dir=datasets.data_dir())
    assert builder.info.splits["train"].num_examples == 60000
    assert any(f.endswith(".array_record-00000-of-00001") or ".array_record-" in f
               for f in os.listdir(builder.data_dir))


def test_nothing_imports_tensorflow():
    code = ("import sys, jaxcnn.data, jaxcnn.train, jaxcnn.data.fashion_mnist; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_missing_debian_files_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCNN_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load("fashion_mnist_offline", "train", data_dir_path=str(tmp_path / "tfds"))


def test_unprepared_or_unknown_stock_dataset(tmp_path):
    with pytest.raises(ValueError, match="not prepared.*fashion_mnist_offline"):
        datasets.load("cifar10", "train", data_dir_path=str(tmp_path))
    with pytest.raises(ValueError, match="unknown dataset 'cifar1O'"):
        datasets.load("cifar1O", "train", data_dir_path=str(tmp_path))


def test_synthetic_any_shape_and_deterministic():
    a = datasets.load("synthetic", "train", synthetic_shape=(7, 5, 3), synthetic_size=20, num_classes=4)
    b = datasets.load("synthetic", "train", synthetic_shape=(7, 5, 3), synthetic_size=20, num_classes=4)
    assert a.images.shape == (20, 7, 5, 3) and a.labels.max() < 4
    np.testing.assert_array_equal(a.images, b.images)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    n = 64
    x = jnp.arange(n * 4 * 4 * 1, dtype=jnp.float32).reshape(n, 4, 4, 1) + 1  # every pixel distinct and > 0
    key = jax.random.key(0)
    y = np.asarray(augment.random_crop(key, x, 2))
    np.testing.assert_array_equal(y, augment.random_crop(key, x, 2))  # a function of the key ...
    assert not np.array_equal(y, augment.random_crop(jax.random.key(1), x, 2))  # ... that uses it
    padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = []
    for i in range(n):  # each output is exactly one of the 5x5 windows of its padded image
        found = [(a, b) for a in range(5) for b in range(5) if np.array_equal(y[i], padded[i, a:a + 4, b:b + 4])]
        assert len(found) == 1, (i, found)
        offsets += found
    # Uniform over 25 offsets: 64 draws that all land on one offset, or never leave the centre (2, 2), have
    # probability 25 * 25**-64 and 25**-64; a crop that never shifts fails here.
    assert len(set(offsets)) > 1 and set(offsets) != {(2, 2)}


def test_flip_pad_normalize():
    x = jnp.arange(8 * 2 * 3 * 1, dtype=jnp.float32).reshape(8, 2, 3, 1)
    y = augment.random_flip(jax.random.key(1), x)
    for i in range(8):  # x's rows are not palindromes, so each image is the original or its mirror, not both
        assert np.array_equal(y[i], x[i]) != np.array_equal(y[i], x[i, :, ::-1])
    # Each image flips with probability 1/2, independently: over 8 images x 16 keys, never or always flipping has
    # probability 2 * 2**-128; a flip that never flips fails here, and so does one that flips a whole batch.
    per_key = [np.asarray(augment.random_flip(jax.random.key(k), x))[:, 0, 0, 0] != np.asarray(x)[:, 0, 0, 0]
               for k in range(16)]
    assert 0 < np.sum(per_key) < 128 and any(0 < row.sum() < 8 for row in per_key)
    assert augment.pad(jnp.zeros((1, 28, 28, 1)), 2).shape == (1, 32, 32, 1)  # LeNet-5's 32x32 input
    np.testing.assert_allclose(augment.normalize(jnp.full((1, 1, 1, 2), 0.5), (0.5, 0.25), (0.5, 0.25)),
                               [[[[0.0, 1.0]]]])
    pre = augment.make_preprocess(mean=(0.5,), std=(0.5,), pad_to=32)
    out = pre(jnp.full((2, 28, 28, 1), 255, jnp.uint8), None, False)
    assert out.shape == (2, 32, 32, 1) and float(out[0, 5, 5, 0]) == 1.0 and float(out[0, 0, 0, 0]) == -1.0


def test_pca_color_jitter_adds_one_colour_per_image():
    x = jnp.zeros((3, 4, 4, 3))
    y = augment.pca_color_jitter(jax.random.key(0), x, 0.1)
    assert np.allclose(y, y[:, :1, :1, :])  # the same RGB shift over each image
    assert not np.allclose(y[0], y[1])


def test_batch_order_is_a_pure_function_of_seed_and_step():
    n, b = 50, 8  # 6 batches per epoch, 2 examples dropped
    epoch0 = np.concatenate([batch_indices(0, s, n, b) for s in range(6)])
    assert len(set(epoch0.tolist())) == 48  # no repeats within an epoch
    epoch1 = np.concatenate([batch_indices(0, s, n, b) for s in range(6, 12)])
    assert len(set(epoch1.tolist())) == 48 and set(epoch1.tolist()) <= set(range(n))
    # the same (seed, step) gives the same batch wherever it is asked for: step 7 alone, or within its epoch
    np.testing.assert_array_equal(batch_indices(0, 7, n, b), epoch1[b:2 * b])
    assert not np.array_equal(batch_indices(0, 6, n, b), batch_indices(0, 0, n, b))  # a new epoch reshuffles
    assert not np.array_equal(batch_indices(1, 0, n, b), batch_indices(0, 0, n, b))


def test_host_batch_split_and_divisibility():
    assert process_slice(16, 1, 2) == slice(8, 16)
    out = split_for_devices({"image": np.zeros((16, 3, 3, 1)), "label": np.arange(16)}, 8)
    assert out["image"].shape == (8, 2, 3, 3, 1) and out["label"][1].tolist() == [2, 3]
    with pytest.raises(ValueError, match="batch_size 100 is not divisible by the 8 devices; use a multiple of 8"):
        check_divisible(100, 8)
    with pytest.raises(ValueError, match="positive"):
        check_divisible(0, 8)


def test_shape_classes_are_deterministic_balanced_and_drawn_where_labelled():
    from jaxcnn.data.shapes import SHAPE_CLASSES, shape_classes

    a, b = shape_classes("train", count=500), shape_classes("train", count=500)
    np.testing.assert_array_equal(a.images, b.images)
    test = shape_classes("test", count=500)
    assert not np.array_equal(a.images, test.images)  # another stream
    assert a.images.shape == (500, 28, 28, 1) and a.images.dtype == np.uint8 and a.num_classes == 5
    counts = np.bincount(a.labels, minlength=len(SHAPE_CLASSES))
    assert counts.min() > 500 / 5 * 0.7  # drawn uniformly
    # every canvas holds one bright shape over a dark background: some pixels above 140, most below 90
    bright = (a.images > 140).reshape(500, -1).mean(1)
    assert bright.min() > 0.02 and np.median((a.images < 90).reshape(500, -1).mean(1)) > 0.5


def test_datasets_come_from_a_registry_that_loads_a_module_when_its_name_is_used():
    from jaxcnn.data import registry

    # the canvases are listed by name; their module (which needs tensorflow_datasets) loads when one is read
    assert "fashion_mnist_detection_ss" in registry.names("whole")
    assert {"synthetic", "synthetic_shapes", "synthetic_shape_classes"} <= set(registry.names("generated"))

    def stripes(split, *, shape, size, num_classes, seed):  # the test split holds the odd rows of train's draw
        images = np.arange(size * 2 * int(np.prod(shape)), dtype=np.uint8).reshape((size * 2, *shape))
        rows = slice(0, None, 2) if split == "train" else slice(1, None, 2)
        return datasets.ArrayDataset(images[rows], np.arange(size * 2, dtype=np.int32)[rows] % num_classes,
                                     num_classes)

    registry.register_dataset("test_stripes", "generated", stripes)
    try:
        with pytest.raises(ValueError, match="registered twice"):
            registry.register_dataset("test_stripes", "generated", stripes)
        with pytest.raises(ValueError, match="dataset kind"):
            registry.register_dataset("test_other", "folder", stripes)
        d = datasets.load("test_stripes", "test[1:3]", synthetic_shape=(2, 2, 1), synthetic_size=4, num_classes=3)
        # test rows 1, 3, 5, 7 of the draw; the slice [1:3] keeps rows 3 and 5: labels 3 % 3, 5 % 3
        assert d.images.shape == (2, 2, 2, 1) and list(d.labels) == [0, 2]
    finally:
        registry._DATASETS.pop("test_stripes")
