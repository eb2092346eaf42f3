"""Notebook 00: what each access level returns for the same images."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def access_levels_figure(images: torch.Tensor, decisions: torch.Tensor, probs: torch.Tensor, logits: torch.Tensor,
                         class_names: Sequence[str]) -> Figure:
    """One row per image: the image, the decision box's class id, the score box's probabilities, the white box's
    logits."""
    k, c = probs.shape
    fig, axes = plt.subplots(k, 4, figsize=(11, 1.9 * k), gridspec_kw={"width_ratios": [0.7, 1.1, 2, 2]}, squeeze=False)
    xs = list(range(c))
    for i in range(k):
        ax = axes[i, 0]
        img = images[i].detach().float().cpu()
        ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        ax = axes[i, 1]
        ax.axis("off")
        d = int(decisions[i])
        ax.text(0.5, 0.5, f"{d}\n({class_names[d]})", ha="center", va="center", fontsize=12, family="monospace")
        ax = axes[i, 2]
        ax.bar(xs, probs[i].detach().float().cpu().tolist(), color="#4c72b0")
        ax.set_ylim(0, 1)
        ax = axes[i, 3]
        ax.bar(xs, logits[i].detach().float().cpu().tolist(), color="#dd8452")
        ax.axhline(0, color="k", lw=0.5)
        for ax in axes[i, 2:]:
            ax.set_xticks(xs)
            ax.set_xticklabels([str(j) for j in xs], fontsize=7)
    titles = ["image", "decision box:\nclass id only", "score box:\nprobabilities", "white box:\nlogits (+ gradients)"]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
