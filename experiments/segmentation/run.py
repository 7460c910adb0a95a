"""Synthetic-shapes semantic segmentation with segnet_small.

Each image is a noisy canvas with 1-3 shapes (circle, square, triangle) of
random colours, sizes and positions; the label map has 4 classes (0 background,
1 circle, 2 square, 3 triangle; later shapes are drawn over earlier ones).
Data are generated in code with a seeded NumPy generator, no download.

    PYTHONPATH=$PWD python experiments/segmentation/run.py --steps 1500

Writes result.json and predictions.png next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxcnn

CLASSES = ("background", "circle", "square", "triangle")
HERE = os.path.dirname(os.path.abspath(__file__))


def make_batch(rng: np.random.Generator, n: int, size: int):
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.empty((n, size, size, 3), np.float32)
    labels = np.zeros((n, size, size), np.int32)
    for b in range(n):
        img = np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).copy()
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(1, 4))
            r = rng.uniform(0.12, 0.25) * size
            cx, cy = rng.uniform(r, size - r, 2)
            if cls == 1:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            elif cls == 2:
                mask = (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
            else:  # upward triangle: apex at top, base at the bottom
                top, bot = cy - r, cy + r
                half = (yy - top) / (2 * r) * r * 1.1
                mask = (yy >= top) & (yy <= bot) & (np.abs(xx - cx) <= half)
            colour = rng.uniform(0, 1, 3)
            while np.abs(colour - img[0, 0]).sum() < 0.4:
                colour = rng.uniform(0, 1, 3)
            img[mask] = colour
            labels[b][mask] = cls
        images[b] = img + rng.normal(0, 0.05, img.shape)
    return images, labels


def confusion(pred, label, k):
    return np.bincount(label.ravel() * k + pred.ravel(), minlength=k * k).reshape(k, k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=10.0)
    args = ap.parse_args()

    model = jaxcnn.create_model("segnet_small", num_classes=len(CLASSES))
    rng = np.random.default_rng(args.seed)
    x0, _ = make_batch(rng, args.batch, args.size)
    variables = model.init(jax.random.key(args.seed), jnp.asarray(x0))
    params, stats = variables["params"], variables["batch_stats"]
    sched = optax.cosine_decay_schedule(args.lr, args.steps)
    tx = optax.adam(sched)
    opt = tx.init(params)

    @jax.jit
    def step(params, stats, opt, x, y):
        def loss_fn(p):
            logits, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd["batch_stats"]
        (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), stats, opt, loss

    predict = jax.jit(lambda p, s, x: jnp.argmax(model.apply({"params": p, "batch_stats": s}, x), -1))

    t0 = time.time()
    done = 0
    for i in range(args.steps):
        x, y = make_batch(rng, args.batch, args.size)
        params, stats, opt, loss = step(params, stats, opt, jnp.asarray(x), jnp.asarray(y))
        done = i + 1
        if i % 100 == 0 or i == args.steps - 1:
            print(f"step {i:5d} loss {float(loss):.4f} ({time.time() - t0:.0f}s)", flush=True)
        if time.time() - t0 > args.max_minutes * 60:
            print(f"stopping at the time limit after {done} steps", flush=True)
            break
    train_s = time.time() - t0

    test_rng = np.random.default_rng(12345)
    xt, yt = make_batch(test_rng, 512, args.size)
    preds = np.concatenate([np.asarray(predict(params, stats, jnp.asarray(xt[i:i + 128])))
                            for i in range(0, len(xt), 128)])
    cm = confusion(preds, yt, len(CLASSES))
    iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    result = {
        "model": "segnet_small",
        "task": f"synthetic shapes {args.size}x{args.size}, 4 classes, 512 held-out images (seed 12345)",
        "mean_iou": round(float(iou.mean()), 4),
        "per_class_iou": {c: round(float(v), 4) for c, v in zip(CLASSES, iou)},
        "pixel_accuracy": round(float(np.diag(cm).sum() / cm.sum()), 4),
        "steps": done, "batch": args.batch, "lr": args.lr, "optimizer": "adam, cosine decay",
        "params": jaxcnn.count_params({"params": params}),
        "train_seconds": round(train_s, 1),
        "command": f"PYTHONPATH=$PWD python experiments/segmentation/run.py --steps {args.steps} "
                   f"--batch {args.batch} --size {args.size} --lr {args.lr} --seed {args.seed} "
                   f"--max-minutes {args.max_minutes:g}",
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores visible, shared with other jobs; "
                    f"jax {jax.__version__} on {jax.default_backend()}",
    }
    print(json.dumps(result, indent=2))
    with open(os.path.join(HERE, "result.json"), "w") as f:
        json.dump(result, f, indent=2)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    cmap = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"])
    k = 6
    fig, axes = plt.subplots(3, k, figsize=(2 * k, 6.4))
    for j in range(k):
        axes[0, j].imshow(np.clip(xt[j], 0, 1))
        axes[1, j].imshow(yt[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        axes[2, j].imshow(preds[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        for a in axes[:, j]:
            a.set_xticks([]); a.set_yticks([])
    for a, t in zip(axes[:, 0], ("image", "truth", "prediction")):
        a.set_ylabel(t)
    fig.suptitle(f"segnet_small on synthetic shapes: mean IoU {iou.mean():.3f} "
                 "(red circle, green square, blue triangle)")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "predictions.png"), dpi=80)


if __name__ == "__main__":
    main()
