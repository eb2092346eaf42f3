"""Notebook 05 figures: pseudo-samples growing from noise (ZSDB3KD), boundary distances, soft labels, accuracy."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from labkit.core.metrics import entropy
from labkit.synthesis.base import Snapshot
from labkit.teaching.plots.core import finish_axes, legend_across


def snapshot_mosaic(snapshot: Snapshot, num_classes: int, per_class: int | None = None, pad: int = 1) -> torch.Tensor:
    """One H×W grey mosaic of a snapshot: a row per class, ``per_class`` images per row (blank where missing).

    Colour images are averaged to grey. Pixel values stay in [0, 1]; padding is 1 (white).
    """
    images = snapshot.images.detach().float().cpu()
    labels = snapshot.labels if snapshot.labels is not None else torch.zeros(images.shape[0], dtype=torch.int64)
    if images.dim() == 4:
        images = images.mean(1)
    elif images.dim() != 3:
        raise ValueError(f"snapshot images must be N×C×H×W or N×H×W, got {tuple(images.shape)}")
    h, w = images.shape[1:]
    k = per_class or max(int((labels == c).sum()) for c in range(num_classes))
    mosaic = torch.ones(num_classes * (h + pad) + pad, k * (w + pad) + pad)
    for c in range(num_classes):
        members = images[labels.cpu() == c][:k]
        for j in range(members.shape[0]):
            r0, c0 = pad + c * (h + pad), pad + j * (w + pad)
            mosaic[r0:r0 + h, c0:c0 + w] = members[j]
    return mosaic


def distance_curve(history: Sequence[Mapping[str, float]], title: str = "Distance to the nearest boundary") -> Figure:
    """Mean and median nearest-boundary distance per iteration, with the share of images that moved."""
    it = [h["iteration"] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 3.3))
    ax.plot(it, [h["mean_distance"] for h in history], marker="o", label="mean")
    ax.plot(it, [h["median_distance"] for h in history], marker=".", ls="--", label="median")
    ax.set_xlabel("iteration (distance measured before the step)")
    ax.set_ylabel("L2 distance to the nearest boundary")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(it, [h["moved"] for h in history], color="0.6", lw=1, label="share of images that moved")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share moved", color="0.4")
    # under the axes, not in them: inside, it covered the median line wherever that ended
    legend_across(ax, ax2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def soft_label_distributions(soft: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                             title: str = "DB3 soft labels of the pseudo-samples") -> Figure:
    """Three panels: the mean soft label of each class's pseudo-samples (rows: teacher class); the probability each
    soft label gives the teacher's class; its entropy (each quantity on its own axis)."""
    soft, labels = soft.detach().float().cpu(), labels.detach().cpu()
    c = soft.shape[1]
    mean = torch.stack([soft[labels == k].mean(0) if bool((labels == k).any()) else torch.zeros(c) for k in range(c)])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    im = ax1.imshow(mean.numpy(), cmap="viridis")
    ax1.set_xticks(range(c), list(class_names), rotation=60, fontsize=7, ha="right")
    ax1.set_yticks(range(c), list(class_names), fontsize=7)
    ax1.set_xlabel("soft-label class")
    ax1.set_ylabel("teacher's class of the pseudo-sample")
    ax1.set_title("mean soft label per class")
    fig.colorbar(im, ax=ax1, fraction=0.046)
    own = soft.gather(1, labels.view(-1, 1)).squeeze(1)
    ax2.hist(own.numpy(), bins=30, alpha=0.8, color="C0")
    ax2.axvline(1.0 / c, color="k", ls=":", lw=1, label="uniform 1/C")
    ax2.set_xlabel("probability of the teacher's class")
    ax2.set_ylabel("pseudo-samples")
    ax2.set_title("how much mass the own class keeps")
    ax2.legend(fontsize=7)
    ax3.hist(entropy(soft).numpy(), bins=30, alpha=0.8, color="C1")
    ax3.axvline(math.log(c), color="k", ls=":", lw=1, label=f"uniform (log C = {math.log(c):.2f})")
    ax3.set_xlabel("entropy (nats)")
    ax3.set_ylabel("pseudo-samples")
    ax3.set_title("how flat the soft labels are")
    ax3.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def accuracy_curves(points: Sequence[Mapping[str, float]], teacher_acc: float | None = None,
                    reference: Mapping[str, tuple[float, float]] | None = None,
                    title: str = "Student accuracy along the pseudo-sample iterations") -> Figure:
    """Student test accuracy against iterations (left) and against teacher queries, log scale (right).

    ``points`` rows need ``iteration``, ``queries`` and ``test_acc`` (``holdout_acc`` is drawn too if
    present). ``reference`` adds labelled ``(queries, accuracy)`` markers to the right panel, e.g. a
    published figure and its query cost.
    """
    it = [p["iteration"] for p in points]
    q = [max(1, p["queries"]) for p in points]
    acc = [p["test_acc"] for p in points]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, xs in ((ax1, it), (ax2, q)):
        ax.plot(xs, acc, marker="o", label="student, test")
        if all("holdout_acc" in p and p["holdout_acc"] is not None for p in points):
            ax.plot(xs, [p["holdout_acc"] for p in points], marker=".", ls="--", label="student, pseudo-sample holdout")
        if teacher_acc is not None:
            ax.axhline(teacher_acc, color="k", ls=":", lw=1, label="teacher, test")
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    ax1.set_xlabel("iterations of search-and-step")
    ax2.set_xscale("log")
    ax2.set_xlabel("teacher queries (log scale)")
    for name, (rq, racc) in (reference or {}).items():
        ax2.scatter([rq], [racc], marker="*", s=120, zorder=3, label=name)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def own_class_mass_against_tau(distances: torch.Tensor, labels: torch.Tensor,
                               taus: Sequence[float] = (1, 2, 5, 10, 20, 50),
                               title: str = "How flat DB3 soft labels are") -> Figure:
    """The mean probability the pseudo-samples' DB3 soft labels give their own class, and each other class, against
    the temperature τ (log scale; :func:`labkit.synthesis.boundary.own_class_mass`)."""
    from labkit.synthesis.boundary import own_class_mass

    own, other = own_class_mass(distances, labels, taus)
    c = distances.shape[1]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(taus, own, marker="o", label="own class")
    ax.plot(taus, other, marker="s", label="each other class (mean)")
    ax.axhline(1.0 / c, color="k", ls=":", lw=1, label="uniform 1/C")
    ax.set_xscale("log")
    ax.set_ylim(0, 1)
    return finish_axes(fig, ax, xlabel="temperature τ (log scale)", ylabel="mean probability", title=title)
