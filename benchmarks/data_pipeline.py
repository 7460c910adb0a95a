"""The input pipeline alone: images/s and peak memory, in memory vs streamed through grain.

    python -m benchmarks.data_pipeline [--data_dir /tmp/jaxcnn_bench_data] [--only fmnist,raw,jpeg]
                                       [--seconds 10] [--max-load 1.5]
    python -m benchmarks.data_pipeline --only rss [--rss-sizes 36,500,4200] [--rss-steps 30]

Three sets, each run in a fresh process per configuration:
- fmnist: Fashion-MNIST's 60,000 training images (28x28x1, batch 256);
- raw: synthetic 96x96x3 uint8 arrays, 16,000 (1x, 442 MB) and 64,000 (4x, 1.77 GB), batch 256;
- jpeg: synthetic JPEG photos of 160-400 px a side, 5,000 (1x) and 20,000 (4x), decoded and
  given Inception's crop to 224x224 plus a flip, batch 64 (ImageNet-style).
- rss: peak resident memory against dataset size: training itself (scripts/train.py's engine: a tiny CNN,
  preprocess.image_size=28, batch 32, --rss-steps steps, then the evaluation of the test split) on image
  folders of 256x256 JPEG photos of --rss-sizes training images each (default 36, 500 and 4,200; the test
  split a tenth of that), one fresh process per size. Streaming is flat when the peak does not grow with
  the size. Memory, not time: a busy machine moves it little.
The synthetic sets are written once into --data_dir with jaxcnn.data.prepare_data.write.

Per configuration: the time to the first batch (opening; the in-memory path reads the whole
split then), images/s over the following --seconds, images per CPU-second in that window (all
processes: a figure a busy machine moves little), and the peak resident memory of the process
and of all its processes together (grain's workers included; sampled every 20 ms), beside the
baseline after the imports. Before each one it waits until the 1-minute load average is below
--max-load (the machine is shared) and prints the load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAW = (96, 96, 3)
SETS = {  # name: (kind, examples)
    "bench_raw_1x": ("raw", 16_000), "bench_raw_4x": ("raw", 64_000),
    "bench_jpeg_1x": ("jpeg", 5_000), "bench_jpeg_4x": ("jpeg", 20_000),
}
CONFIGS = [  # (group, label, dataset, open_split kwargs, train_batches kwargs)
    ("fmnist", "in memory", "fashion_mnist_offline", dict(in_memory=True), dict(batch_size=256)),
    ("fmnist", "streamed, 2 threads", "fashion_mnist_offline", dict(in_memory=False), dict(batch_size=256)),
    ("fmnist", "streamed, 2 workers", "fashion_mnist_offline", dict(in_memory=False),
     dict(batch_size=256, workers=2)),
    ("raw", "1x in memory", "bench_raw_1x", dict(in_memory=True), dict(batch_size=256)),
    ("raw", "4x in memory", "bench_raw_4x", dict(in_memory=True), dict(batch_size=256)),
    ("raw", "1x streamed, 2 threads", "bench_raw_1x", dict(in_memory=False), dict(batch_size=256)),
    ("raw", "4x streamed, 2 threads", "bench_raw_4x", dict(in_memory=False), dict(batch_size=256)),
    ("jpeg", "1x streamed, 2 threads", "bench_jpeg_1x", {},
     dict(batch_size=64, image_size=224, random_resized_crop=True, flip=True)),
    ("jpeg", "4x streamed, 2 threads", "bench_jpeg_4x", {},
     dict(batch_size=64, image_size=224, random_resized_crop=True, flip=True)),
    ("jpeg", "4x streamed, 2 workers", "bench_jpeg_4x", {},
     dict(batch_size=64, image_size=224, random_resized_crop=True, flip=True, workers=2)),
]


# ----------------------------------------------------------------------------- the synthetic sets

def _photo(rng, h, w):
    """A smooth random picture (a few colour blobs plus grain): compresses like a photo, not like noise."""
    from PIL import Image

    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    im = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), np.int16)
    return np.clip(im + rng.integers(-12, 13, im.shape), 0, 255).astype(np.uint8)


def _plan(kind: str, n: int, test: int = 100):
    import io

    import tensorflow_datasets as tfds
    from PIL import Image

    from jaxcnn.data.formats import Plan, pixel_tensor

    def reader(split, count):
        def example(i):
            rng = np.random.default_rng([n, 0 if split == "train" else 1, i])
            label = int(rng.integers(0, 10))
            if kind == "raw":
                return {"image": rng.integers(0, 256, RAW, dtype=np.uint8), "label": label}
            h, w = (256, 256) if kind == "jpeg256" else (int(v) for v in rng.integers(160, 401, 2))
            buf = io.BytesIO()
            Image.fromarray(_photo(rng, h, w)).save(buf, format="JPEG", quality=90)
            return {"image": buf.getvalue(), "label": label}

        return count, example

    image = (pixel_tensor(RAW) if kind == "raw" else
             tfds.features.Image(shape=(256, 256, 3) if kind == "jpeg256" else (None, None, 3), encoding_format="jpeg"))
    return Plan(features={"image": image, "label": tfds.features.ClassLabel(num_classes=10)},
                splits={"train": reader("train", n), "test": reader("test", test)},
                description=f"Synthetic {kind} set for benchmarks/data_pipeline.py.")


def ensure_sets(data_dir: str, names):
    from jaxcnn.data import open_split
    from jaxcnn.data.prepare_data import DATASET_VERSION, write

    if "fashion_mnist_offline" in names:
        open_split("fashion_mnist_offline", "train", data_dir=data_dir)  # prepared from Debian's files once
    for name in names:
        if name in SETS and not os.path.exists(os.path.join(data_dir, name, DATASET_VERSION, "dataset_info.json")):
            t = time.perf_counter()
            write(name, _plan(*SETS[name]), data_dir=data_dir)
            print(f"# wrote {name} in {time.perf_counter() - t:.0f} s", flush=True)


def rss_name(n: int) -> str:
    return f"bench_rss_{n}"


def ensure_rss_sets(data_dir: str, sizes) -> None:
    """The 256x256 JPEG sets of the rss group: n training images, a tenth of that (at least 8) for testing."""
    from jaxcnn.data.prepare_data import DATASET_VERSION, write

    for n in sizes:
        name = rss_name(n)
        if not os.path.exists(os.path.join(data_dir, name, DATASET_VERSION, "dataset_info.json")):
            t = time.perf_counter()
            write(name, _plan("jpeg256", n, test=max(8, n // 10)), data_dir=data_dir, quiet=True)
            print(f"# wrote {name} in {time.perf_counter() - t:.0f} s", flush=True)


def measure_training(n: int, data_dir: str, steps: int, workdir: str) -> dict:
    """Peak RSS of a short training run on bench_rss_N (see the module docstring), in this process."""
    import jaxcnn.runtime

    jaxcnn.runtime.configure()
    import psutil

    from jaxcnn.train import base_config, train_and_evaluate

    baseline = psutil.Process().memory_info().rss  # after the imports
    sampler = _PeakRss()
    sampler.start()
    c = base_config()
    c.dataset, c.data_dir = rss_name(n), data_dir
    c.model.name, c.model.in_channels = "fashion_cnn_tiny", 3
    c.preprocess.image_size, c.preprocess.mean, c.preprocess.std = 28, (0.5,), (0.25,)
    c.parallel, c.batch_size, c.eval_batch_size = "none", 32, 64
    c.num_steps, c.log_every, c.eval_every, c.checkpoint_every = steps, steps, 0, 0
    c.progress, c.optimizer.warmup_steps = False, 0
    t0 = time.perf_counter()
    record = train_and_evaluate(c, workdir)
    wall = time.perf_counter() - t0
    sampler.stop = True
    sampler.join()
    return dict(examples=n, baseline_mb=baseline / 2**20, peak_self_mb=sampler.peak_self / 2**20,
                peak_all_mb=sampler.peak_all / 2**20, wall_s=wall, eval_accuracy=record["eval_accuracy"])


def rss_table(args) -> None:
    import shutil
    import tempfile

    sizes = [int(v) for v in args.rss_sizes.split(",")]
    ensure_rss_sets(args.data_dir, sizes)
    print("| training images (256x256 JPEG) | prepared (MiB) | peak RSS, process (MB) | peak RSS, all processes (MB) "
          "| baseline (MB) | wall (s) | load before/after |")
    print("|--:|--:|--:|--:|--:|--:|---|")
    for n in sizes:
        folder = os.path.join(args.data_dir, rss_name(n))
        mib = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs) / 2**20
        before = _load()
        work = tempfile.mkdtemp(prefix="rss_")
        spec = json.dumps({"rss": n, "steps": args.rss_steps, "workdir": work})
        r = subprocess.run([sys.executable, "-m", "benchmarks.data_pipeline", "--child", spec,
                            "--data_dir", args.data_dir], capture_output=True, text=True, cwd=HERE,
                           env={**os.environ, "PYTHONPATH": HERE, "JAX_PLATFORMS": "cpu"})
        shutil.rmtree(work, ignore_errors=True)
        if r.returncode:
            print(f"| {n:,} | failed: {(r.stderr.strip().splitlines() or ['?'])[-1]} |")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {n:,} | {mib:,.1f} | {m['peak_self_mb']:,.0f} | {m['peak_all_mb']:,.0f} | {m['baseline_mb']:,.0f} "
              f"| {m['wall_s']:.0f} | {before:.2f}/{_load():.2f} |", flush=True)


# ----------------------------------------------------------------------------- one measurement (child)

class _PeakRss(threading.Thread):
    """Samples the resident memory of this process and of all its descendants."""

    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.peak_self, self.peak_all, self.stop = psutil.Process(), 0, 0, False

    def run(self):
        import psutil

        while not self.stop:
            try:
                own = self.proc.memory_info().rss
                total = own + sum(c.memory_info().rss for c in self.proc.children(recursive=True))
            except psutil.Error:
                continue
            self.peak_self, self.peak_all = max(self.peak_self, own), max(self.peak_all, total)
            time.sleep(0.02)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its live descendants (grain's workers)."""
    import psutil

    procs = [psutil.Process()]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure(dataset: str, split_kw: dict, batch_kw: dict, data_dir: str, seconds: float) -> dict:
    import jaxcnn.data as jd

    import grain  # noqa: F401  (imported before the baseline, as the pipeline needs it)
    import tensorflow_datasets  # noqa: F401

    sampler = _PeakRss()
    sampler.start()
    time.sleep(0.1)
    baseline = sampler.peak_all
    t0 = time.perf_counter()
    split = jd.open_split(dataset, "train", data_dir=data_dir, **split_kw)
    it = jd.train_batches(split, seed=0, **batch_kw)
    next(it)
    first = time.perf_counter() - t0
    for _ in range(2):  # warm-up
        next(it)
    n, t1, cpu1 = 0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - t1 < seconds:
        n += len(next(it)["label"])
    rate, per_cpu = n / (time.perf_counter() - t1), n / (_cpu_seconds() - cpu1)
    it.close()
    sampler.stop = True
    sampler.join()
    return dict(first_batch_s=first, images_per_s=rate, images_per_cpu_s=per_cpu, baseline_mb=baseline / 2**20,
                peak_self_mb=sampler.peak_self / 2**20, peak_all_mb=sampler.peak_all / 2**20, examples=len(split))


# ----------------------------------------------------------------------------- the table (parent)

def _load() -> float:
    return os.getloadavg()[0]


def _wait_quiet(max_load: float, wait_s: float):
    deadline = time.time() + wait_s
    while _load() > max_load and time.time() < deadline:
        time.sleep(15)
    return _load()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="/tmp/jaxcnn_bench_data")
    parser.add_argument("--only", default="fmnist,raw,jpeg", help="comma-separated groups")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per configuration")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait until the 1-min load is below this")
    parser.add_argument("--wait", type=float, default=900.0, help="give up waiting for a quiet machine after (s)")
    parser.add_argument("--rss-sizes", default="36,500,4200", help="rss group: training images per set")
    parser.add_argument("--rss-steps", type=int, default=30, help="rss group: training steps per run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        if "rss" in spec:
            print(json.dumps(measure_training(spec["rss"], args.data_dir, spec["steps"], spec["workdir"])))
            return
        print(json.dumps(measure(spec["dataset"], spec["split_kw"], spec["batch_kw"], args.data_dir, args.seconds)))
        return
    groups = args.only.split(",")
    if "rss" in groups:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, python {platform.python_version()}")
        print(f"# command: python -m benchmarks.data_pipeline {' '.join(argv or sys.argv[1:])}")
        rss_table(args)
        groups = [g for g in groups if g != "rss"]
        if not groups:
            return
    configs = [c for c in CONFIGS if c[0] in groups]
    ensure_sets(args.data_dir, {c[2] for c in configs})
    cpu = platform.processor() or platform.machine()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores ({cpu}), python {platform.python_version()}")
    print(f"# command: python -m benchmarks.data_pipeline {' '.join(argv or sys.argv[1:])}")
    print("| set | configuration | examples | first batch (s) | images/s | images per CPU-second "
          "| peak RSS, process (MB) | peak RSS, all processes (MB) | baseline (MB) | load before/after |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for group, label, dataset, split_kw, batch_kw in configs:
        before = _wait_quiet(args.max_load, args.wait)
        spec = json.dumps(dict(dataset=dataset, split_kw=split_kw, batch_kw=batch_kw))
        r = subprocess.run([sys.executable, "-m", "benchmarks.data_pipeline", "--child", spec,
                            "--data_dir", args.data_dir, "--seconds", str(args.seconds)],
                           capture_output=True, text=True, cwd=HERE,
                           env={**os.environ, "PYTHONPATH": HERE, "JAX_PLATFORMS": "cpu"})
        if r.returncode:
            print(f"| {group} | {label} | failed: {r.stderr.strip().splitlines()[-1]} |")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {group} | {label} | {m['examples']:,} | {m['first_batch_s']:.1f} | {m['images_per_s']:,.0f} | "
              f"{m['images_per_cpu_s']:,.0f} | "
              f"{m['peak_self_mb']:,.0f} | {m['peak_all_mb']:,.0f} | {m['baseline_mb']:,.0f} | "
              f"{before:.2f}/{_load():.2f} |", flush=True)


if __name__ == "__main__":
    main()
