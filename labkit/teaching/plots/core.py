"""General figures: image grids, soft-label bars, entropy histograms, training curves."""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Literal

import matplotlib.pyplot as plt
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from labkit.core.metrics import entropy
from labkit.teaching.plots.layout import clear_toolbar, set_title


def finish_axes(fig: Figure, ax: plt.Axes, *, xlabel: str | None = None, ylabel: str | None = None,
                title: str | None = None, grid_which: Literal["major", "minor", "both"] = "major",
                legend_size: int | None = 8) -> Figure:
    """Label, grid and lay out a one-axes matplotlib figure, close it (no ``show()``) and return it.

    The common tail of the lab's line and histogram plots: axis labels, a light grid, a small
    legend (``legend_size=None`` for none), ``tight_layout`` and ``plt.close`` so notebooks
    display the returned figure once.
    """
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3, which=grid_which)
    if legend_size is not None:
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    plt.close(fig)
    return fig


def legend_across(target: plt.Axes, *others: plt.Axes, **kwargs: Any) -> None:
    """One legend on ``target`` for the lines of ``target`` and of ``others`` (e.g. a ``twinx`` axis)."""
    handles = [h for ax in (target, *others) for h in ax.get_legend_handles_labels()[0]]
    target.legend(handles, [str(h.get_label()) for h in handles], **kwargs)


def image_grid(images: torch.Tensor, labels: Sequence[str] | None = None, ncols: int = 10,
               title: str | None = None, size: float = 1.1) -> Figure:
    """A matplotlib grid of images (N×C×H×W in [0,1]) with optional captions."""
    images = images.detach().float().cpu()
    n = images.shape[0]
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def soft_label_bars(probs: torch.Tensor, class_names: Sequence[str], titles: Sequence[str] | None = None,
                    title: str = "Soft labels", images: torch.Tensor | None = None) -> go.Figure:
    """Plotly bar charts, one per row of ``probs`` (k×C), side by side; ``images`` (k×C×H×W in [0, 1]) adds each
    image above its bars."""
    return update_soft_label_figure(soft_label_figure(probs.shape[0], class_names, titles, title, images=images),
                                    probs)


def soft_label_figure(k: int, class_names: Sequence[str], titles: Sequence[str] | None = None,
                      title: str = "Soft labels", widget: bool = False,
                      images: torch.Tensor | None = None) -> go.Figure:
    """An empty k-panel soft-label bar figure (a ``FigureWidget`` when ``widget``) for live updates.

    With ``images`` (k×C×H×W in [0, 1]) a row above the bars shows the images the soft labels belong to.
    """
    from plotly.subplots import make_subplots

    bar_row = 1 if images is None else 2
    if images is None:
        fig = make_subplots(rows=1, cols=k, subplot_titles=list(titles) if titles else None, shared_yaxes=True)
    else:
        fig = make_subplots(rows=2, cols=k, row_heights=[0.32, 0.68], vertical_spacing=0.08,
                            subplot_titles=(list(titles) if titles else [""] * k) + [""] * k)
        grey = images.detach().float().cpu().mean(1)  # k×H×W
        for j in range(k):
            fig.add_trace(go.Heatmap(z=grey[j].flip(0).tolist(), colorscale="gray", zmin=0, zmax=1, showscale=False,
                                     hoverinfo="skip", name=f"image {j}"), row=1, col=j + 1)
            fig.update_xaxes(visible=False, row=1, col=j + 1)
            fig.update_yaxes(visible=False, scaleanchor=f"x{j + 1}" if j else "x", row=1, col=j + 1)
    for j in range(k):
        fig.add_trace(go.Bar(x=list(class_names), y=[0.0] * len(class_names), name=f"image {j}",
                             marker_color="#4c72b0", showlegend=False), row=bar_row, col=j + 1)
        fig.update_yaxes(range=[0, 1], showticklabels=j == 0, row=bar_row, col=j + 1)
    fig.update_yaxes(title_text="probability", row=bar_row, col=1)
    fig.update_xaxes(tickangle=45, tickfont={"size": 9}, row=bar_row)
    fig.update_layout(title=title, height=320 if images is None else 480,
                      margin={"t": 60, "b": 80, "l": 50, "r": 10}, bargap=0.15)
    clear_toolbar(fig)
    return go.FigureWidget(fig) if widget else fig


def update_soft_label_figure(fig: go.Figure, probs: torch.Tensor, title: str | None = None) -> go.Figure:
    """Write new probabilities into a figure from :func:`soft_label_figure` (one batch update)."""
    probs = probs.detach().float().cpu()
    ctx = fig.batch_update() if isinstance(fig, go.FigureWidget) else contextlib.nullcontext()
    with ctx:
        for j, trace in enumerate(t for t in fig.data if t.type == "bar"):
            trace.y = probs[j].tolist()
        if title is not None:
            set_title(fig, title)
    return fig


def entropy_histogram(prob_sets: dict[str, torch.Tensor], bins: int = 40,
                      title: str = "Entropy of soft labels") -> Figure:
    """Overlaid histograms of per-sample entropy for several sets of probabilities."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, probs in prob_sets.items():
        ax.hist(entropy(probs).cpu().numpy(), bins=bins, alpha=0.55, label=name, density=True)
    c = next(iter(prob_sets.values())).shape[1]
    ax.axvline(float(torch.log(torch.tensor(float(c)))), color="k", ls="--", lw=1, label="uniform (log C)")
    ax.set_xlabel("entropy (nats)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def history_plot(histories: dict[str, list[dict[str, float]]], key: str = "val_acc",
                 title: str = "Validation accuracy per epoch") -> Figure:
    """Curves of one history key (e.g. ``val_acc``) for several runs."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, hist in histories.items():
        xs = [h["epoch"] for h in hist if key in h]
        ys = [h[key] for h in hist if key in h]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def few_labels_plot(points: Sequence[Any], full: dict[str, tuple[float, float, int]] | None = None,
                    title: str = "Student alone against plain KD as labelled images grow") -> Figure:
    """Test accuracy (mean ± std over seeds) against labelled training images, log x, one line per row.

    ``points``: :class:`labkit.studies.few_labels.FewLabelPoint` (``row``, ``size``, ``mean``, ``std``); ``full``:
    optional ``{row: (mean, std, size)}`` for the full training set (the committed board), drawn at its size.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rows = list(dict.fromkeys(p.row for p in points))
    for i, row in enumerate(rows):
        pts = sorted((p for p in points if p.row == row), key=lambda p: p.size)
        xs = [p.size for p in pts]
        ys = [100 * p.mean for p in pts]
        es = [100 * p.std for p in pts]
        if full and row in full:
            m, s, n = full[row]
            xs, ys, es = xs + [n], ys + [100 * m], es + [100 * s]
        label = {"student": "student alone (true labels)", "kd": "plain KD (score box)"}.get(row, row)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label, color=f"C{i}")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (log scale)")
    ax.set_ylabel("test accuracy % (mean ± std, 3 seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig
