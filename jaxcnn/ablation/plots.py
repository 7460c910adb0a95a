"""An ablation's pictures (matplotlib, Agg): training error over steps per arm
(optionally in panels, as He et al.'s figure 6: plain left, residual right),
per-layer gradient norms at initialisation, and the learned first-layer kernels."""

from __future__ import annotations

import textwrap

import numpy as np

from jaxcnn._extras import require


def _pyplot():
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: dict, path: str, title: str, panels=()) -> None:
    """Running training error (mean over seeds, band = ± std) per arm; `panels` = [(title, [arm labels])]
    draws one axis per panel, side by side, two to a row beyond two (default: one axis with every arm)."""
    plt = _pyplot()
    panels = [(t, list(labels)) for t, labels in panels] or [("", list(curves))]
    cols = min(len(panels), 2)
    # about 80 characters of a 10-point title fit a 6.4-inch axis; longer titles wrap instead of running off
    title = textwrap.fill(title, 80 * cols, break_on_hyphens=False)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.2 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (panel_title, labels) in zip(axes.flat, panels):
        for label in labels:
            x, c = curves[label]
            m = c.mean(0)
            s = c.std(0, ddof=1) if len(c) > 1 else np.zeros_like(m)
            ax.plot(x, 100 * m, label=label)
            ax.fill_between(x, 100 * (m - s), 100 * (m + s), alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_title(panel_title or title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for row in axes:
        row[0].set_ylabel("training error % (running, mean ± std over seeds)")
    if len(panels) > 1:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grad_norms(grad_norms: dict, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rows in grad_norms.items():
        ax.semilogy(np.arange(1, len(rows) + 1), [n for _, n in rows], marker=".", label=label)
    ax.set_xlabel("convolution layer (input → output)")
    ax.set_ylabel("||dL/dW|| at initialisation")
    ax.set_title("Per-layer gradient norms at initialisation (one batch, first seed)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_kernels(kernels: dict, path: str) -> None:
    """Rows: each arm's learned first-layer kernels (HWIO, first input channel), then the second arm's
    flipped on both spatial axes (equal to the first row when the arms are twins)."""
    plt = _pyplot()
    labels = list(kernels)
    rows = [(lab, kernels[lab]) for lab in labels]
    if len(labels) == 2:
        rows.append((f"{labels[1]}, flipped", np.flip(kernels[labels[1]], (0, 1))))
    n = kernels[labels[0]].shape[-1]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.5, 1.25 * len(rows) + 0.4), squeeze=False)
    vmax = max(float(np.abs(k).max()) for _, k in rows)
    for i, (lab, k) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(k[:, :, 0, j], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(lab, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Learned first-layer kernels (first seed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
