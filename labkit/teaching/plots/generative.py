"""Figures for notebook 07 (MEKD): what the generator draws, and the alignment loss as pictures."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from torch import nn

from labkit.synthesis.base import Snapshot
from labkit.synthesis.generators import interpolate_responses, one_hot_responses
from labkit.teaching.plots.core import image_grid
from labkit.teaching.plots.layout import clear_toolbar

if TYPE_CHECKING:
    from labkit.methods.mekd import GenerativeAlignmentLoss


@torch.no_grad()
def _generate(generator: nn.Module, z: torch.Tensor) -> torch.Tensor:
    was = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    out = generator(z.to(device)).float().cpu()
    generator.train(was)
    return out


def class_vector_grid(generator: nn.Module, class_names: Sequence[str], scale: float = 3.0,
                      teacher_labels: Sequence[str] | None = None) -> Figure:
    """G(scale·e_k) for every class k, captioned with the class (and, if given, what the teacher answered)."""
    k = len(class_names)
    images = _generate(generator, one_hot_responses(list(range(k)), k, scale))
    caps = [f"{n}" + (f"\nT: {t}" if teacher_labels is not None else "")
            for n, t in zip(class_names, teacher_labels or [""] * k)]
    return image_grid(images, caps, ncols=k, title=f"G(one-hot · {scale:g}): one image per class vector")


def interpolation_strip(generator: nn.Module, a: int, b: int, class_names: Sequence[str], steps: int = 8,
                        scale: float = 3.0, probs: torch.Tensor | None = None) -> Figure:
    """Images along the line from scale·e_a to scale·e_b; ``probs`` (steps×C) adds the teacher's or student's top
    class."""
    k = len(class_names)
    images = _generate(generator, interpolate_responses(a, b, k, steps, scale))
    alphas = torch.linspace(0, 1, steps).tolist()
    caps = [f"α={al:.2f}" for al in alphas]
    if probs is not None:
        top = probs.float().cpu().max(1)
        caps = [f"α={al:.2f}\n{class_names[int(c)]} {float(p):.2f}"
                for al, c, p in zip(alphas, top.indices, top.values)]
    return image_grid(images, caps, ncols=steps, title=f"From {class_names[a]} to {class_names[b]}")


def snapshot_grid(snapshots: Sequence[Snapshot], class_names: Sequence[str] | None = None,
                  title: str = "The generator's samples as training progresses") -> Figure:
    """Rows = snapshots (epoch 0 = untrained), columns = the fixed class vectors."""
    rows = len(snapshots)
    cols = snapshots[0].images.shape[0]
    fig, axes = plt.subplots(rows, cols, figsize=(0.95 * cols + 0.8, 0.95 * rows + 0.5), squeeze=False)
    for i, snap in enumerate(snapshots):
        for j in range(cols):
            ax = axes[i, j]
            ax.imshow(snap.images[j, 0].float().cpu(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"epoch {snap.step}", fontsize=8)
            if i == 0 and class_names is not None and snap.labels is not None:
                ax.set_title(class_names[int(snap.labels[j])], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def alignment_pictures(images: torch.Tensor, teacher_images: torch.Tensor, student_images: torch.Tensor,
                       teacher_top: Sequence[str], student_top: Sequence[str], title: str | None = None) -> Figure:
    """Per sample (columns): x′ = G(z), G(r_T/τ_g), G(S(x′)/τ_g) (captioned with their mean pixel) and
    |difference| with its L1 value, every row on the same 0-1 scale.

    The L1 of the last row, averaged, is the alignment term of MEKD's loss. ``title`` names the student drawn
    (default: a title that gives the mean L1, so two students' figures never share one).
    """
    x, gt, gs = (t.detach().float().cpu() for t in (images, teacher_images, student_images))
    diff = (gt - gs).abs()
    k = x.shape[0]
    fig, axes = plt.subplots(4, k, figsize=(1.2 * k + 1.2, 5.8), squeeze=False)
    rows = [("x′ = G(z)", x), ("G(r_T/τ_g)", gt), ("G(S(x′)/τ_g)", gs), ("|difference|", diff)]
    for i, (name, imgs) in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            # every row on the images' own 0-1 scale: a difference of 0.001 looks as small as it is
            ax.imshow(imgs[j, 0], cmap="gray" if i < 3 else "magma", vmin=0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 1:
                ax.set_title(f"T: {teacher_top[j]}\nmean {float(gt[j].mean()):.2f}", fontsize=7)
            if i == 2:
                ax.set_title(f"S: {student_top[j]}\nmean {float(gs[j].mean()):.2f}", fontsize=7)
            if i == 3:
                ax.set_title(f"L1 {float(diff[j].mean()):.3f}", fontsize=7)
    fig.suptitle(title or f"The alignment loss, drawn: the image each response generates (mean L1 "
                          f"{float(diff.mean()):.3f})")
    fig.tight_layout()
    plt.close(fig)
    return fig


def accuracy_comparison(rows: dict[str, float], teacher_acc: float | None = None, queries: dict[str, int] | None = None,
                        title: str = "Students trained on the same 10% edge subset, scored on the full test set"
                        ) -> go.Figure:
    """A plotly bar chart of test accuracy per run (with query counts in the hover text).

    Each bar's value is printed inside the bar, near its foot, so it never meets the teacher's line above the bars.
    """
    names = list(rows)
    vals = [100 * float(rows[n]) for n in names]
    hover = [f"{n}: {v:.2f}%" + (f"<br>{queries[n]:,} teacher queries" if queries and n in queries else "")
             for n, v in zip(names, vals)]
    fig = go.Figure(go.Bar(x=names, y=vals, text=[f"{v:.1f}%" for v in vals], textposition="inside",
                           insidetextanchor="start", textfont={"color": "white"},
                           hovertext=hover, hoverinfo="text", marker_color="#4c72b0"))
    if teacher_acc is not None:
        fig.add_hline(y=100 * teacher_acc, line_dash="dash", annotation_text=f"teacher {100 * teacher_acc:.1f}%",
                      annotation_position="top right")
    fig.update_layout(title=title, yaxis_title="test accuracy (%)", yaxis_range=[0, 105], height=380,
                      margin={"t": 60, "b": 40, "l": 50, "r": 10})
    return clear_toolbar(fig)


def gan_history_plot(histories: dict[str, list[dict[str, float]]]) -> Figure:
    """Per GAN epoch: how often the teacher's top class on G(z) equals argmax z, for each run."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, hist in histories.items():
        ax.plot([h["epoch"] for h in hist], [h["teacher_agrees"] for h in hist], marker="o", label=name)
    ax.axhline(0.1, color="k", ls="--", lw=1, label="chance (1/C)")
    ax.set_xlabel("GAN epoch")
    ax.set_ylabel("T(G(z)) == argmax z")
    ax.set_ylim(0, 1)
    ax.set_title("Does the generator emulate the teacher's inverse?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


@torch.no_grad()
def alignment_view(loss_fn: GenerativeAlignmentLoss, student: nn.Module, images: torch.Tensor,
                   teacher_response: torch.Tensor, class_names: Sequence[str],
                   title: str | None = None) -> tuple[Figure, dict[str, float]]:
    """Draw MEKD's alignment term for a few transfer images, and return its parts.

    ``loss_fn`` is a :class:`~labkit.methods.mekd.GenerativeAlignmentLoss` (it holds the frozen G,
    the response mode and τ_g); ``teacher_response`` are the box's answers on ``images``
    (probabilities or class ids); ``title`` names the student (e.g. "untrained student"; the default title gives
    the loss's parts, so two students' figures differ). Returns ``(figure, {"alignment": ..., "kl": ...,
    "total": ...})``.
    """
    from labkit.methods.mekd import response_logits

    g = loss_fn.generator
    device = next(g.parameters()).device
    was = student.training
    student.eval()
    s = student(images.to(device)).float()
    student.train(was)
    r = response_logits(teacher_response.to(device), len(class_names), loss_fn.response)
    gt, gs = g(r / loss_fn.tau_g), g(s / loss_fn.tau_g)
    align, kl = loss_fn.parts(s, teacher_response.to(device))
    t_top = [class_names[int(c)] for c in r.argmax(1)]
    s_top = [class_names[int(c)] for c in s.argmax(1)]
    parts = {"alignment": float(align), "kl": float(kl), "total": float(loss_fn.w_f * align + loss_fn.w_kl * kl)}
    fig = alignment_pictures(images, gt, gs, t_top, s_top, title=title or (
        f"The alignment loss, drawn: alignment {parts['alignment']:.3f}, KL {parts['kl']:.3f}, "
        f"total {parts['total']:.3f}"))
    return fig, parts
