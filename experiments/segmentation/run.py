"""Synthetic-shapes semantic segmentation with segnet_small, through the
training engine (experiments/configs/segnet_shapes.py), then a picture of
predictions on held-out canvases.

    PYTHONPATH=$PWD python experiments/segmentation/run.py --workdir runs/segnet_shapes [--config.num_steps=...]

Writes result.json and predictions.png next to this file. The run itself is
an ordinary engine workdir: rerunning resumes or, when finished, only redraws.
"""

from __future__ import annotations

import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from jaxcnn.train import cli  # noqa: E402


def draw(state, setup, path: str, title: str, k: int = 6) -> None:
    import jax.numpy as jnp
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    images, truth = setup.eval_data.images[:k], setup.eval_data.labels[:k]
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    preds = np.asarray(jnp.argmax(state.apply_fn(variables, setup.preprocess(images, None, False)), -1))
    cmap = ListedColormap(["black", "tab:red", "tab:green", "tab:blue"])
    fig, axes = plt.subplots(3, k, figsize=(2 * k, 6.4))
    for j in range(k):
        axes[0, j].imshow(np.clip(images[j], 0, 1))
        axes[1, j].imshow(truth[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        axes[2, j].imshow(preds[j], cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
        for a in axes[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    for a, t in zip(axes[:, 0], ("image", "truth", "prediction")):
        a.set_ylabel(t)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    p = cli.parser(__doc__, config_required=False)
    p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "segnet_shapes"))
    args, config = cli.parse(p, argv, config_path=os.path.join(ROOT, "experiments", "configs", "segnet_shapes.py"))
    cli.setup_process()
    import jax

    import jaxcnn
    from jaxcnn.data.shapes import CLASSES
    from jaxcnn.train import build, run

    def job():
        setup = build(config)
        final = run(setup, args.workdir)
        iou = final["eval_iou_per_class"]
        result = {
            "model": config.model.name, "config": "experiments/configs/segnet_shapes.py",
            "task": f"synthetic shapes {config.synthetic_shape[0]}x{config.synthetic_shape[1]}, 4 classes, "
                    f"{len(setup.eval_data)} held-out canvases",
            "mean_iou": round(final["eval_mean_iou"], 4),
            "per_class_iou": {c: round(v, 4) for c, v in zip(CLASSES, iou)},
            "pixel_accuracy": round(final["eval_accuracy"], 4), "steps": final["step"],
            "batch": config.batch_size, "params": jaxcnn.count_params({"params": final["state"].params}),
            "command": "PYTHONPATH=$PWD python experiments/segmentation/run.py " + " ".join(sys.argv[1:]),
            "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores; jax {jax.__version__} on "
                        f"{jax.default_backend()}",
        }
        print(json.dumps(result, indent=2))
        with open(os.path.join(HERE, "result.json"), "w") as f:
            json.dump(result, f, indent=2)
        draw(final["state"], setup, os.path.join(HERE, "predictions.png"),
             f"segnet_small on synthetic shapes: mean IoU {final['eval_mean_iou']:.3f} "
             "(red circle, green square, blue triangle)")

    return cli.main(job)


if __name__ == "__main__":
    sys.exit(main())
