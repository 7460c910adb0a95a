"""jaxcnn.data's grain pipeline: the batch of a step is a pure function of
(seed, step), the same streamed or in memory, on threads or worker processes,
split over processes by rows; resuming from the iterator state is exact;
images of any size are cropped and resized; evaluation covers a split once."""

import json
import math
import sys

import numpy as np
import pytest

import _data_fakes as fakes
from jaxcnn.data import batch_indices, eval_batches, open_split, prepare, train_batches
from jaxcnn.data import images as imgs


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A fake CIFAR-10 (fixed size) and a folder of JPEG/PNG images of mixed sizes, prepared once."""
    root = tmp_path_factory.mktemp("pipeline")
    fakes.cifar_archive(root / "c10.tar.gz", "cifar10", counts={**{f"data_batch_{i}.bin": 8 for i in range(1, 6)},
                                                                 "test_batch.bin": 10})
    prepare("cifar10", str(root / "c10.tar.gz"), data_dir=str(root / "tfds"), quiet=True)
    fakes.image_folder(root / "mixed", per_class=12, classes=("a", "b", "c"))
    prepare("image_folder", str(root / "mixed"), data_dir=str(root / "tfds"), quiet=True)
    return str(root / "tfds")


def take(it, n):
    return [next(it) for _ in range(n)]


def same(a, b):
    return all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"])
               for x, y in zip(a, b, strict=True))


def test_batch_of_a_step_is_the_sharding_order_and_a_pure_function_of_seed_and_step():
    split = open_split("synthetic", "train", synthetic_shape=(6, 5, 1), synthetic_size=50)
    data = split.to_arrays()
    batches = take(train_batches(split, seed=3, batch_size=8), 9)  # 6 per epoch: crosses into epoch 2
    for step, b in enumerate(batches):
        idx = batch_indices(3, step, 50, 8)  # the order the in-memory loop has always used
        np.testing.assert_array_equal(b["image"], data.images[idx])
        assert b["label"].dtype == np.int32 and b["image"].dtype == np.uint8
    assert same(take(train_batches(split, seed=3, batch_size=8, start_step=4), 5), batches[4:])
    assert not np.array_equal(next(train_batches(split, seed=4, batch_size=8))["image"], batches[0]["image"])


def test_streamed_and_in_memory_give_the_same_batches(tfds_dir):
    streamed = open_split("cifar10_offline", "train", data_dir=tfds_dir, in_memory=False)
    held = open_split("cifar10_offline", "train", data_dir=tfds_dir)  # small: held in memory by default
    assert held.in_memory and not streamed.in_memory and streamed.image_shape == (32, 32, 3)
    for kw in (dict(flip=True), dict(image_size=24, random_resized_crop=True, flip=True)):
        a = take(train_batches(streamed, seed=1, batch_size=10, **kw), 5)
        assert same(a, take(train_batches(held, seed=1, batch_size=10, **kw), 5))
    flipped = take(train_batches(streamed, seed=1, batch_size=10, flip=True), 1)[0]["image"]
    plain = take(train_batches(streamed, seed=1, batch_size=10), 1)[0]["image"]
    mirrored = [np.array_equal(f, p[:, ::-1]) and not np.array_equal(f, p) for f, p in zip(flipped, plain)]
    assert 0 < sum(mirrored) < 10 and all(m or np.array_equal(f, p) for m, f, p in zip(mirrored, flipped, plain))


def test_processes_take_their_rows_of_the_global_batch(tfds_dir):
    split = open_split("mixed", "train", data_dir=tfds_dir)
    kw = dict(seed=0, batch_size=8, image_size=12, random_resized_crop=True, flip=True)
    whole = take(train_batches(split, **kw), 3)
    parts = [take(train_batches(split, process_index=p, process_count=2, **kw), 3) for p in range(2)]
    for s in range(3):
        assert parts[0][s]["image"].shape == (4, 12, 12, 3)
        for key in ("image", "label"):
            np.testing.assert_array_equal(np.concatenate([parts[0][s][key], parts[1][s][key]]), whole[s][key])


def test_resume_from_the_iterator_state_is_exact(tfds_dir):
    split = open_split("mixed", "train", data_dir=tfds_dir)
    kw = dict(seed=5, batch_size=6, image_size=10, random_resized_crop=True, flip=True)
    it = train_batches(split, **kw)
    unbroken = take(it, 8)
    assert it.get_state()["step"] == 8  # the step of the next batch
    first = train_batches(split, **kw)
    take(first, 3)
    saved = json.loads(json.dumps(first.get_state()))  # what a checkpoint holds
    resumed = train_batches(split, **kw)
    resumed.set_state(saved)
    assert saved["step"] == 3 and same(take(resumed, 5), unbroken[3:])
    with pytest.raises(ValueError, match="seed=6 but this iterator has 5; resume with the same seed"):
        resumed.set_state({**saved, "seed": 6})


def test_worker_processes_give_the_batches_of_threads(tfds_dir):
    split = open_split("mixed", "train", data_dir=tfds_dir)
    kw = dict(seed=2, batch_size=6, image_size=16, random_resized_crop=True, flip=True)
    it = train_batches(split, workers=2, **kw)
    try:
        assert same(take(it, 4), take(train_batches(split, threads=1, **kw), 4))
    finally:
        it.close()


def test_images_of_any_size_train_and_eval(tfds_dir):
    split = open_split("mixed", "train", data_dir=tfds_dir)
    assert split.image_shape is None and len(split) == 33 and split.class_names == ("a", "b", "c")
    with pytest.raises(ValueError, match="images of varying sizes; pass image_size=S"):
        train_batches(split, seed=0, batch_size=4)
    b = next(train_batches(split, seed=0, batch_size=4, image_size=20, random_resized_crop=True, flip=True))
    assert b["image"].shape == (4, 20, 20, 3) and b["image"].dtype == np.uint8
    test = open_split("mixed", "test", data_dir=tfds_dir)
    for pc in (1, 2):
        got = [list(eval_batches(test, batch_size=2, process_index=p, process_count=pc, image_size=8))
               for p in range(pc)]
        assert all(len(g) == math.ceil(len(test) / 2) for g in got)  # the same count on every process
        masks = np.concatenate([np.concatenate([g[i]["mask"] for g in got]) for i in range(len(got[0]))])
        labels = np.concatenate([np.concatenate([g[i]["label"] for g in got]) for i in range(len(got[0]))])
        np.testing.assert_array_equal(masks, [1, 1, 1, 0])  # 3 examples, the last batch padded
        np.testing.assert_array_equal(labels[:3], test.read(np.arange(3))[1])
        assert got[0][0]["image"].shape == (2 // pc, 8, 8, 3)
    assert "tensorflow" not in sys.modules  # TFDS's array_record sources and our decoding need none


def test_crops_and_resizes():
    # Inception's crop: area 8%-100% of the image, aspect 3/4-4/3, inside the image.
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(10, 300, 2)
        top, left, ch, cw = imgs.random_resized_crop_box(rng.random(4 * imgs.ATTEMPTS), h, w)
        assert 0 <= top <= h - ch and 0 <= left <= w - cw
        if ch * cw < h * w:  # not the fall-back
            assert 0.08 * 0.9 <= ch * cw / (h * w) <= 1.0 and 3 / 4 * 0.9 <= cw / ch <= 4 / 3 * 1.1
    # No draw fits a 1x100 strip: torchvision's fall-back, the centre crop at the nearest allowed ratio.
    assert imgs.random_resized_crop_box(np.full(40, 0.999), 1, 100) == (0, 49, 1, 1)
    # Evaluation: shorter side to S / 0.875, then the centre S x S; a flat image stays flat.
    flat = np.full((50, 80, 3), 7, np.uint8)
    np.testing.assert_array_equal(imgs.eval_image(flat, channels=3, size=(16, 16)), np.full((16, 16, 3), 7))
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (64, 1, 3))  # columns 0..63
    crop = imgs.eval_image(ramp, channels=3, size=(32, 32), crop_fraction=0.5)  # resized to 64: the centre
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(16, 48))
    grey = imgs.train_image(ramp[..., :1], np.zeros(imgs.UNIFORMS), channels=1, size=(8, 8),
                            random_resized_crop=True, flip=True)
    assert grey.shape == (8, 8, 1) and grey[0, 0, 0] > grey[0, -1, 0]  # u[-1]=0 < 1/2: flipped


def test_large_jpegs_are_decoded_at_a_reduced_scale_with_the_same_picture():
    import io

    from PIL import Image

    y, x = np.mgrid[0:480, 0:640]
    photo = np.stack([x * 255 // 640, y * 255 // 480, (x + y) * 255 // 1120], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=95)
    small = imgs.eval_image(buf.getvalue(), channels=3, size=(32, 32))  # libjpeg decodes at 1/8 here
    full = imgs.eval_image(photo, channels=3, size=(32, 32))  # the same crop from the full pixels
    assert small.shape == (32, 32, 3) and np.abs(small.astype(int) - full).mean() < 3
    u = np.random.default_rng(0).random(imgs.UNIFORMS)
    kw = dict(channels=3, size=(24, 24), random_resized_crop=True, flip=False)
    assert np.abs(imgs.train_image(buf.getvalue(), u, **kw).astype(int) - imgs.train_image(photo, u, **kw)).mean() < 3


def test_any_png_or_jpeg_mode_decodes_to_rgb():
    import io

    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    for im in (Image.fromarray(pixels[..., 0]), Image.fromarray(pixels).convert("P"),
               Image.fromarray(pixels).convert("RGBA"), Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        want = np.asarray(im.convert("RGB")) if im.mode != "I;16" else np.repeat(pixels[..., :1], 3, -1)
        np.testing.assert_array_equal(imgs.decode(buf.getvalue(), 3), want)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(buf, format="JPEG")
    assert imgs.decode(buf.getvalue(), 3).shape == (6, 8, 3)


def test_split_slicing_everywhere(tfds_dir):
    head = open_split("cifar10_offline", "train[:75%]", data_dir=tfds_dir, in_memory=False)
    tail = open_split("cifar10_offline", "train[75%:]", data_dir=tfds_dir)
    whole = open_split("cifar10_offline", "train", data_dir=tfds_dir).to_arrays()
    assert (len(head), len(tail)) == (30, 10)
    np.testing.assert_array_equal(np.concatenate([head.to_arrays().images, tail.to_arrays().images]), whole.images)
    streamed = head.read(np.array([29]))[0][0]
    np.testing.assert_array_equal(streamed, whole.images[29])
    syn = open_split("synthetic", "test[:10]", synthetic_size=40)
    np.testing.assert_array_equal(syn.to_arrays().images, open_split("synthetic", "test", synthetic_size=40)
                                  .to_arrays().images[:10])
    with pytest.raises(ValueError, match="has no split 'tset'.*Did you mean 'test'"):
        open_split("cifar10_offline", "tset[:5]", data_dir=tfds_dir)
    with pytest.raises(ValueError, match="cannot read split 'train\\[:90\\]x'.*'train\\[:90%\\]'"):
        open_split("cifar10_offline", "train[:90]x", data_dir=tfds_dir)


def test_bad_arguments_name_the_fix(tfds_dir):
    split = open_split("cifar10_offline", "test", data_dir=tfds_dir)
    with pytest.raises(ValueError, match="batch_size 11 is larger than cifar10_offline split 'test' "):
        train_batches(split, seed=0, batch_size=11)
    with pytest.raises(ValueError, match="batch_size \\(global, over the processes\\) 9 is not divisible by the 2"):
        train_batches(split, seed=0, batch_size=9, process_count=2)
    with pytest.raises(ValueError, match="process_index 2 must be below process_count 2"):
        eval_batches(split, batch_size=4, process_index=2, process_count=2)
    with pytest.raises(ValueError, match="image_size must be an int >= 1"):
        train_batches(split, seed=0, batch_size=2, image_size=0)
    with pytest.raises(ValueError, match="unknown dataset 'mixd'.*Did you mean 'mixed'.*prepare_data.py"):
        open_split("mixd", "train", data_dir=tfds_dir)
