"""Notebook 00: what each access level returns for the same images."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def access_levels_figure(images: torch.Tensor, decisions: torch.Tensor, probs: torch.Tensor | None,
                         logits: torch.Tensor | None, class_names: Sequence[str],
                         refused: Mapping[str, str] | None = None) -> Figure:
    """One row per image: the image, the decision box's class id, the score box's probabilities, the white box's
    logits. A level this learner may not open (``None``; class mode) keeps its column, with why in ``refused``."""
    k, c = len(decisions), len(class_names)
    fig, axes = plt.subplots(k, 4, figsize=(11, 1.9 * k), gridspec_kw={"width_ratios": [0.7, 1.1, 2, 2]}, squeeze=False)
    xs = list(range(c))
    closed = {"score": probs is None, "white": logits is None}
    for i in range(k):
        ax = axes[i, 0]
        img = images[i].detach().float().cpu()
        ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        ax = axes[i, 1]
        ax.axis("off")
        d = int(decisions[i])
        ax.text(0.5, 0.5, f"{d}\n({class_names[d]})", ha="center", va="center", fontsize=12, family="monospace")
        for ax, level, values, color in ((axes[i, 2], "score", probs, "#4c72b0"), (axes[i, 3], "white", logits,
                                                                                    "#dd8452")):
            if values is None:
                ax.axis("off")
                if i == 0:
                    why = (refused or {}).get(level, "not open to you")
                    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(f"closed: {why}", 38)[:5]), ha="center", va="center",
                            fontsize=7, color="0.35", transform=ax.transAxes)
                continue
            ax.bar(xs, values[i].detach().float().cpu().tolist(), color=color)
            if level == "score":
                ax.set_ylim(0, 1)
            else:
                ax.axhline(0, color="k", lw=0.5)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(j) for j in xs], fontsize=7)
    titles = ["image", "decision box:\nclass id only", "score box:\nprobabilities", "white box:\nlogits (+ gradients)"]
    for ax, title, level in zip(axes[0], titles, ("", "", "score", "white")):
        ax.set_title(title + ("\n(closed to you)" if closed.get(level) else ""), fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
