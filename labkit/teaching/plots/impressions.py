"""Figures for notebook 04 (ZSKD Data Impressions).

Class similarity as a heatmap, Dirichlet samples on a 3-class simplex, a grid of
impressions per class, their evolution from noise, soft-label profiles of
impressions versus real data, and student accuracy against the number of
impressions. Every function returns a figure object; nothing calls ``show()``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import matplotlib.pyplot as plt
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from labkit.synthesis.base import Snapshot
from labkit.teaching.plots.core import finish_axes
from labkit.teaching.plots.layout import clear_toolbar, set_title

TERNARY_COLORS = ("#4c72b0", "#dd8452", "#55a868")


def class_similarity_heatmap(similarity: torch.Tensor, class_names: Sequence[str],
                             title: str = "Class similarity from the teacher's final layer") -> go.Figure:
    """A plotly heatmap of the C×C similarity matrix with class names and values written in."""
    sim = similarity.detach().float().cpu()
    names = list(class_names)
    text = [[f"{v:.2f}" for v in row] for row in sim.tolist()]
    fig = go.Figure(go.Heatmap(z=sim.tolist(), x=names, y=names, colorscale="Viridis", zmin=0, zmax=1,
                               text=text, texttemplate="%{text}", textfont={"size": 9},
                               hovertemplate="row %{y}<br>column %{x}<br>similarity %{z:.3f}<extra></extra>",
                               colorbar={"title": "C(i, j)"}))
    fig.update_yaxes(autorange="reversed", title_text="class k (row = Dirichlet concentration of k)")
    fig.update_xaxes(tickangle=45, title_text="class j")
    fig.update_layout(title=title, height=520, width=620, margin={"t": 60, "l": 120, "b": 110})
    return clear_toolbar(fig)


def most_similar_pairs(similarity: torch.Tensor, class_names: Sequence[str],
                       k: int = 5) -> list[tuple[str, str, float]]:
    """The ``k`` most similar pairs of different classes (symmetrised), most similar first."""
    sim = similarity.detach().float().cpu()
    sym = (sim + sim.T) / 2
    c = sym.shape[0]
    iu = torch.triu_indices(c, c, offset=1)
    vals = sym[iu[0], iu[1]]
    order = vals.argsort(descending=True)[:k]
    return [(class_names[int(iu[0, i])], class_names[int(iu[1, i])], round(float(vals[i]), 3)) for i in order]


def ternary_figure(class_names: Sequence[str], widget: bool = False, title: str = "Dirichlet samples") -> go.Figure:
    """An empty 3-class simplex (plotly ternary) with one trace per class, for live updates."""
    if len(class_names) != 3:
        raise ValueError("a ternary plot shows exactly 3 classes")
    fig = go.Figure()
    for j, name in enumerate(class_names):
        fig.add_trace(go.Scatterternary(a=[], b=[], c=[], mode="markers", name=f"impressions of {name}",
                                        marker={"size": 4, "opacity": 0.6, "color": TERNARY_COLORS[j]}))
    fig.update_layout(title=title, height=460, width=560, legend={"orientation": "h", "y": -0.1},
                      ternary={"aaxis": {"title": {"text": class_names[0]}, "min": 0},
                               "baxis": {"title": {"text": class_names[1]}, "min": 0},
                               "caxis": {"title": {"text": class_names[2]}, "min": 0}})
    clear_toolbar(fig)
    return go.FigureWidget(fig) if widget else fig


def update_ternary(fig: go.Figure, samples: torch.Tensor, classes: torch.Tensor, title: str | None = None) -> go.Figure:
    """Write N×3 probability samples (``classes`` gives each sample's trace) into a :func:`ternary_figure`."""
    samples, classes = samples.detach().float().cpu(), classes.detach().cpu()
    ctx = fig.batch_update() if isinstance(fig, go.FigureWidget) else contextlib.nullcontext()
    with ctx:
        for j, trace in enumerate(fig.data):
            pts = samples[classes == j]
            trace.a, trace.b, trace.c = pts[:, 0].tolist(), pts[:, 1].tolist(), pts[:, 2].tolist()
        if title is not None:
            set_title(fig, title)
    return fig


def ternary_samples(samples: torch.Tensor, classes: torch.Tensor, class_names: Sequence[str],
                    title: str = "Dirichlet samples") -> go.Figure:
    """A static ternary plot of N×3 samples coloured by the class they were drawn for."""
    return update_ternary(ternary_figure(class_names, title=title), samples, classes)


def impressions_grid(images: torch.Tensor, classes: torch.Tensor, class_names: Sequence[str], per_class: int = 8,
                     title: str = "Data Impressions, one row per class", size: float = 0.9) -> Figure:
    """A matplotlib grid: one row per class, the first ``per_class`` impressions of that class."""
    images, classes = images.detach().float().cpu(), classes.detach().cpu()
    c = len(class_names)
    fig, axes = plt.subplots(c, per_class, figsize=(size * per_class + 1.4, size * c + 0.5), squeeze=False)
    for k in range(c):
        idx = (classes == k).nonzero().flatten()[:per_class]
        for j in range(per_class):
            ax = axes[k, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < idx.numel():
                img = images[int(idx[j])]
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
                else:
                    ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
        axes[k, 0].set_ylabel(class_names[k], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def evolution_figure(snapshot: Snapshot, class_names: Sequence[str], widget: bool = False, ncols: int = 5) -> go.Figure:
    """A plotly grid of the snapshot's images (one per class) as heatmaps, for the evolution slider."""
    from plotly.subplots import make_subplots

    imgs = snapshot.images.detach().float().cpu()
    labels = snapshot.labels.tolist() if snapshot.labels is not None else list(range(imgs.shape[0]))
    n = imgs.shape[0]
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[class_names[int(k)] for k in labels],
                        horizontal_spacing=0.02, vertical_spacing=0.08)
    for i in range(n):
        fig.add_trace(go.Heatmap(z=imgs[i].mean(0).flip(0).tolist(), colorscale="gray", zmin=0, zmax=1,
                                 showscale=False, hoverinfo="skip"), row=i // ncols + 1, col=i % ncols + 1)
    fig.update_xaxes(showticklabels=False, scaleanchor=None)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=f"Impressions at step {snapshot.step}", height=190 * nrows + 60, width=150 * ncols + 40,
                      margin={"t": 70, "l": 10, "r": 10, "b": 10})
    clear_toolbar(fig)
    return go.FigureWidget(fig) if widget else fig


def update_evolution(fig: go.Figure, snapshot: Snapshot) -> go.Figure:
    """Show another snapshot in a figure from :func:`evolution_figure`."""
    imgs = snapshot.images.detach().float().cpu()
    ctx = fig.batch_update() if isinstance(fig, go.FigureWidget) else contextlib.nullcontext()
    with ctx:
        for i, trace in enumerate(fig.data):
            trace.z = imgs[i].mean(0).flip(0).tolist()
        set_title(fig, f"Impressions at step {snapshot.step}")
    return fig


def crafting_loss_curve(loss_history: torch.Tensor, target_entropy: float | None = None,
                        title: str = "Crafting loss CE(y, softmax(T(x)/τ))") -> Figure:
    """The mean crafting loss per Adam step, with the floor H(y) (the targets' mean entropy) if given."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    h = loss_history.detach().float().cpu()
    ax.plot(range(len(h)), h.tolist(), label="mean loss over all impressions")
    if target_entropy is not None:
        ax.axhline(target_entropy, color="k", ls="--", lw=1, label="floor: mean entropy of the targets H(y)")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sorted_probability_profile(prob_sets: dict[str, torch.Tensor],
                               title: str = "Average soft label, classes sorted by probability") -> Figure:
    """Mean of each sample's probabilities sorted in decreasing order (rank 1 = top class), log scale.

    A peaky set falls off steeply after rank 1; a soft set stays flat.
    """
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, probs in prob_sets.items():
        prof = probs.detach().float().cpu().sort(dim=1, descending=True).values.mean(0)
        ax.plot(range(1, prof.numel() + 1), prof.tolist(), marker="o", label=name)
    ax.set_yscale("log")
    return finish_axes(fig, ax, xlabel="rank of the class in the soft label", ylabel="mean probability", title=title,
                       grid_which="both")


def accuracy_vs_impressions(counts: Sequence[int], accuracies: Sequence[float], teacher_acc: float | None = None,
                            paper_acc: float | None = None,
                            title: str = "Student accuracy vs number of impressions") -> Figure:
    """Test accuracy (in [0, 1]) of students trained on growing sets of impressions."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(list(counts), [100 * a for a in accuracies], marker="o", label="ZSKD student")
    if teacher_acc is not None:
        ax.axhline(100 * teacher_acc, color="k", ls="--", lw=1, label=f"teacher {100 * teacher_acc:.1f}%")
    if paper_acc is not None:
        ax.axhline(100 * paper_acc, color="tab:red", ls=":", lw=1,
                   label=f"paper (48k impressions) {100 * paper_acc:.2f}%")
    ax.set_xscale("log")
    return finish_axes(fig, ax, xlabel="number of Data Impressions", ylabel="test accuracy (%)", title=title,
                       grid_which="both")
