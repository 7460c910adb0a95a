"""The input pipeline: batches of a `Split` (jaxcnn.data.sources) through grain.

    split = open_split("cifar10_offline", "train[:90%]")
    it = train_batches(split, seed=0, batch_size=256, start_step=0, image_size=None, flip=True, workers=2)
    batch = next(it)                   # {"image": uint8 (256, 32, 32, 3) NHWC, "label": int32 (256,)}
    state = it.get_state()             # {"step": 1, ...}: JSON-able, for the checkpoint
    for b in eval_batches(open_split("cifar10_offline", "test"), batch_size=1000): ...  # b["mask"]

Determinism. The global batch of step s is a pure function of (seed, s):
its examples are `jaxcnn.data.sharding.batch_indices(seed, s, len(split),
batch_size)` (epochs of a fresh permutation each, the remainder dropped) and
its augmentation draws come from a generator seeded by (seed, s), one row per
position in the global batch. Process p of P takes rows [p*B/P, (p+1)*B/P),
so a run is the same on any number of processes, and a run resumed at step s
(start_step=s, or set_state) is bit-identical to one that never stopped.

Streaming. Grain's MapDataset maps each step to its batch; workers=0 builds
batches on `threads` threads of this process, workers=N on N worker processes
(whole batches each, round-robin, so the order is unchanged), `prefetch`
batches ahead. Only the examples of the batches in flight are in memory,
except for a Split held in memory (small fixed-size sets; see sources.py).
"""

from __future__ import annotations

import sys
from typing import Iterator, Optional

import numpy as np

from jaxcnn._extras import require
from jaxcnn._validation import check_workers
from jaxcnn.data import images as imgs
from jaxcnn.data.sharding import check_divisible, epoch_permutation, process_slice
from jaxcnn.data.sources import Split

_AUGMENT_STREAM = 1  # (seed, step, 1) seeds the augmentation draws; (seed, epoch) the permutations


def _check_int(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _size(image_size) -> Optional[tuple[int, int]]:
    if image_size is None:
        return None
    return (_check_int(image_size, "image_size", 1),) * 2


class _Batches:
    """Builds the batch of a step (train) or of a batch number (eval); pickled to grain's workers."""

    def __init__(self, split, *, seed, batch_size, process_index, process_count, size, random_resized_crop,
                 flip, crop_fraction, train):
        self.split, self.seed, self.batch_size, self.size = split, seed, batch_size, size
        self.rows = process_slice(batch_size, process_index, process_count)
        self.random_resized_crop, self.flip, self.crop_fraction, self.train = (
            random_resized_crop, flip, crop_fraction, train)
        self.channels = split.channels
        self._perms = {}  # epoch -> permutation: drawn once per epoch, not per step

    def __getstate__(self):
        return dict(self.__dict__, _perms={})

    def _indices(self, step: int) -> np.ndarray:
        """The global batch of `step`: as jaxcnn.data.sharding.batch_indices, with the permutation kept."""
        epoch, i = divmod(step, len(self.split) // self.batch_size)
        perms = self._perms  # threads share this object: read the dict once, replace it whole
        if epoch not in perms:
            perms = {e: p for e, p in perms.items() if e >= epoch - 1}
            perms[epoch] = epoch_permutation(self.seed, epoch, len(self.split))
            self._perms = perms
        return perms[epoch][i * self.batch_size:(i + 1) * self.batch_size]

    def __call__(self, step: int) -> dict:
        step = int(step)
        if self.train:
            index = self._indices(step)[self.rows]
            images, labels = self.split.read(index)
            return {"image": self._train_images(step, images), "label": np.asarray(labels, np.int32)}
        index = np.arange(step * self.batch_size, (step + 1) * self.batch_size)[self.rows]
        real = index < len(self.split)
        # Only the real rows are read and decoded; the padding of the last batch is zeros (masked out).
        images, labels = self.split.read(index[real])
        images = self._eval_images(images) if real.any() else None
        return {"image": pad_rows(images, len(index), self._eval_shape(), self._image_dtype()),
                "label": pad_rows(np.asarray(labels, np.int32), len(index), ()),
                "mask": real.astype(np.float32)}

    def _image_dtype(self):
        arrays = getattr(self.split, "_arrays", None)
        return arrays.images.dtype if arrays is not None and self.size is None else np.uint8

    def _eval_shape(self) -> tuple:
        """(H, W, C) of an evaluation image as this pipeline gives it."""
        if self.size is not None:
            return (*self.size, self.channels)
        return tuple(self.split.image_shape)

    def _train_images(self, step, images):
        resize = self.random_resized_crop or self.size is not None
        if not resize and isinstance(images, list) and not self.split.encoded:
            images = np.stack(images)
        if not resize and isinstance(images, np.ndarray):  # fixed-size arrays: no image library needed
            if not self.flip:
                return images
            flip = self._uniforms(step)[:, -1] < 0.5
            return np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        u = self._uniforms(step)
        return self._stack([imgs.train_image(x, u[k], channels=self.channels, size=self.size,
                                             random_resized_crop=self.random_resized_crop, flip=self.flip,
                                             crop_fraction=self.crop_fraction)
                            for k, x in enumerate(images)])

    def _uniforms(self, step) -> np.ndarray:
        """This process's rows of the (batch_size, UNIFORMS) augmentation draws of `step`."""
        u = np.random.default_rng([self.seed, step, _AUGMENT_STREAM]).random((self.batch_size, imgs.UNIFORMS))
        return u[self.rows]

    def _eval_images(self, images):
        if self.size is None and (isinstance(images, np.ndarray) or not self.split.encoded):
            return np.stack(images) if isinstance(images, list) else images
        return self._stack([imgs.eval_image(x, channels=self.channels, size=self.size,
                                            crop_fraction=self.crop_fraction) for x in images])

    def _stack(self, images):
        shapes = {x.shape for x in images}
        if len(shapes) > 1:
            raise ValueError(f"{self.split.name} split {self.split.split!r} has images of different sizes "
                             f"({sorted(shapes)[:3]}...); pass image_size=S to resize them to S x S")
        return np.stack(images)


def pad_rows(rows, n: int, shape: tuple = (), dtype=np.int32):
    """`rows` (k, *shape) followed by zeros up to n rows; n rows of zeros of `dtype` when rows is None."""
    if rows is None:
        return np.zeros((n, *shape), dtype)
    rows = np.asarray(rows)
    if len(rows) == n:
        return rows
    out = np.zeros((n, *rows.shape[1:]), rows.dtype)
    out[:len(rows)] = rows
    return out


class BatchIterator:
    """The training batches from a step on, forever. `get_state()` is a JSON-able
    dict whose "step" is the step of the next batch; `set_state(state)` moves
    the iterator there. The seed, batch size, dataset and split must match;
    the process layout may change (the global batches do not depend on it).
    `close()` stops grain's workers."""

    def __init__(self, batches: _Batches, start_step: int, options: dict, meta: dict):
        self._batches, self._step, self._options, self._meta = batches, start_step, options, meta
        self._it = None

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._it is None:
            self._it = iter(_grain_iter(self._batches, self._step, sys.maxsize, **self._options))
        batch = next(self._it)
        self._step += 1
        return batch

    def get_state(self) -> dict:
        return {"step": self._step, **self._meta}

    def set_state(self, state: dict) -> None:
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"not a data iterator state (a dict with 'step'): {state!r}")
        for key, value in self._meta.items():
            if key in ("seed", "batch_size", "dataset", "split") and key in state and state[key] != value:
                raise ValueError(f"data iterator state has {key}={state[key]!r} but this iterator has "
                                 f"{value!r}; resume with the same {key} or start a new run")
        self.close()
        self._step = _check_int(state["step"], "state['step']", 0)

    def close(self) -> None:
        if self._it is not None and hasattr(self._it, "close"):
            self._it.close()
        self._it = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _grain_iter(batches: _Batches, start: int, stop: int, *, workers: int, threads: int, prefetch: int):
    """Grain over the batch numbers [start, stop): threads in this process, or worker processes."""
    require("grain")
    import grain

    if batches.split.in_memory:
        workers = 0  # a worker process would hold a copy of the split; threads share it (and PIL frees the GIL)
    ds = grain.MapDataset.range(start, stop).map(batches)
    read = grain.ReadOptions(num_threads=threads if workers == 0 else 1, prefetch_buffer_size=prefetch)
    ds = ds.to_iter_dataset(read)
    if workers:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags; outside an absl app, the defaults
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch))
        # Batches arrive in shared memory; plain copies free it at once and outlive grain's clean-up.
        ds = ds.map(lambda batch: {k: np.array(v) for k, v in batch.items()})
    return ds


def _check_common(split, batch_size, process_index, process_count, workers, threads, prefetch):
    if not isinstance(split, Split):
        raise TypeError(f"split must come from jaxcnn.data.open_split, got {type(split).__name__}")
    batch_size = _check_int(batch_size, "batch_size", 1)
    process_count = _check_int(process_count, "process_count", 1)
    process_index = _check_int(process_index, "process_index", 0)
    if process_index >= process_count:
        raise ValueError(f"process_index {process_index} must be below process_count {process_count}")
    check_divisible(batch_size, process_count, "batch_size (global, over the processes)")
    for value, what, minimum in ((workers, "workers", 0), (threads, "threads", 1), (prefetch, "prefetch", 1)):
        _check_int(value, what, minimum)
    check_workers(workers, "workers")  # capped near the core count: a thousand would exhaust the machine
    check_workers(threads, "threads")
    if prefetch > 64:
        raise ValueError(f"prefetch must be at most 64 batches, got {prefetch}; e.g. 2")
    return batch_size, process_index, process_count


def train_batches(split, *, seed: int, batch_size: int, start_step: int = 0, process_index: int = 0,
                  process_count: int = 1, image_size: Optional[int] = None, random_resized_crop: bool = False,
                  flip: bool = False, workers: int = 0, threads: int = 2, prefetch: int = 2,
                  crop_fraction: float = 0.875) -> BatchIterator:
    """Training batches of `split` from step `start_step` on, forever.

    Each is {"image": uint8 (batch_size // process_count, S, S, C) NHWC,
    "label": int32 (batch_size // process_count,)}: this process's rows of the
    global batch of `batch_size` (see the module docstring for the order).
    image_size=S resizes: with `random_resized_crop`, Inception's crop (area
    8%-100%, aspect 3/4-4/3) resized to S x S; without, the evaluation resize
    and centre crop. image_size=None keeps the stored size (fixed-size splits
    only; with `random_resized_crop` the crop is resized back to it). `flip`:
    left-right with probability 1/2. workers=N decodes and augments on N
    processes (a split held in memory always uses threads), else on `threads`
    threads; `prefetch` batches are built ahead.
    """
    batch_size, process_index, process_count = _check_common(split, batch_size, process_index, process_count,
                                                              workers, threads, prefetch)
    seed, start_step = _check_int(seed, "seed", 0), _check_int(start_step, "start_step", 0)
    if batch_size > len(split):
        raise ValueError(f"batch_size {batch_size} is larger than {split.name} split {split.split!r} "
                         f"({len(split)} examples); lower it")
    size = _size(image_size)
    if size is None and split.image_shape is None:
        raise ValueError(f"{split.name} split {split.split!r} has images of varying sizes; pass image_size=S "
                         "(e.g. 224) to crop and resize them")
    _check_fraction(crop_fraction)
    batches = _Batches(split, seed=seed, batch_size=batch_size, process_index=process_index,
                       process_count=process_count, size=size, random_resized_crop=bool(random_resized_crop),
                       flip=bool(flip), crop_fraction=crop_fraction, train=True)
    meta = {"seed": seed, "batch_size": batch_size, "dataset": split.name, "split": split.split,
            "process_index": process_index, "process_count": process_count}
    return BatchIterator(batches, start_step, dict(workers=workers, threads=threads, prefetch=prefetch), meta)


def _check_fraction(crop_fraction):
    if not isinstance(crop_fraction, (int, float)) or not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}; 0.875 resizes to 256 for 224")


def eval_batches(split, *, batch_size: int, process_index: int = 0, process_count: int = 1,
                 image_size: Optional[int] = None, crop_fraction: float = 0.875, workers: int = 0,
                 threads: int = 2, prefetch: int = 2) -> Iterator[dict]:
    """The whole split once, in order, as ceil(len / batch_size) global batches
    (the same count on every process): {"image", "label", "mask": float32 1 for
    a real example, 0 for the padding of the last batch}, this process's rows.
    image_size=S: shorter side resized to S / crop_fraction, centre crop S x S."""
    batch_size, process_index, process_count = _check_common(split, batch_size, process_index, process_count,
                                                              workers, threads, prefetch)
    size = _size(image_size)
    if size is None and split.image_shape is None:
        raise ValueError(f"{split.name} split {split.split!r} has images of varying sizes; pass image_size=S "
                         "(e.g. 224) to resize and centre-crop them")
    _check_fraction(crop_fraction)
    batches = _Batches(split, seed=0, batch_size=batch_size, process_index=process_index,
                       process_count=process_count, size=size, random_resized_crop=False, flip=False,
                       crop_fraction=crop_fraction, train=False)
    count = -(-len(split) // batch_size)
    return _closing(_grain_iter(batches, 0, count, workers=workers, threads=threads, prefetch=prefetch))


def _closing(ds) -> Iterator[dict]:
    it = iter(ds)
    try:
        yield from it
    finally:
        if hasattr(it, "close"):
            it.close()
