"""Figures for decision boundaries and DB3KD (notebooks 02 and 03).

Plotly for the interactive 2-D playground, matplotlib for the static
Fashion-MNIST figures. Every function returns a figure and never shows it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from labkit.core.metrics import entropy
from labkit.teaching.plots.layout import clear_toolbar

#: one colour per class (toy2d has at most a handful of classes)
CLASS_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
                "#CCB974", "#64B5CD")
#: one colour per robustness measure
MEASURE_COLORS = {"SD": "#7f7f7f", "BD": "#1f77b4", "MBD": "#d62728", "teacher softmax": "#2ca02c"}


def region_grid(classify: Callable[[torch.Tensor], torch.Tensor], resolution: int = 150,
                lo: float = 0.0, hi: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class ids of ``classify`` (a decision box or any points→class-ids function) on a square grid.

    Returns ``(axis (resolution,), labels (resolution, resolution))``, rows along y.
    """
    axis = torch.linspace(lo, hi, resolution)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    with torch.no_grad():
        out = classify(pts)
    if out.dim() == 2:  # logits or probabilities: keep only the decision
        out = out.argmax(1)
    return axis, out.view(resolution, resolution).cpu()


def decision_region_figure(axis: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                           points: torch.Tensor | None = None, point_labels: torch.Tensor | None = None,
                           title: str = "Teacher decision regions", widget: bool = False) -> go.Figure:
    """A plotly map of decision regions (heatmap), optionally with data points coloured by class."""
    k = len(class_names)
    scale = []
    for c in range(k):
        scale += [(c / k, CLASS_COLORS[c % len(CLASS_COLORS)]), ((c + 1) / k, CLASS_COLORS[c % len(CLASS_COLORS)])]
    fig = go.FigureWidget() if widget else go.Figure()
    a = axis.tolist()
    fig.add_trace(go.Heatmap(x=a, y=a, z=labels.tolist(), zmin=-0.5, zmax=k - 0.5, colorscale=scale, opacity=0.35,
                             # "none", not "skip": a skipped trace emits no click events (the 02 map click)
                             showscale=False, hoverinfo="none", name="regions"))
    if points is not None and point_labels is not None:
        for c in range(k):
            sel = point_labels.cpu() == c
            p = points.cpu()[sel]
            fig.add_trace(go.Scatter(x=p[:, 0].tolist(), y=p[:, 1].tolist(), mode="markers", name=class_names[c],
                                     marker=dict(size=4, color=CLASS_COLORS[c % len(CLASS_COLORS)], opacity=0.6)))
    fig.update_layout(title=title, width=560, height=520, xaxis=dict(range=[0, 1], constrain="domain"),
                      yaxis=dict(range=[0, 1], scaleanchor="x"), margin=dict(l=40, r=10, t=50, b=40),
                      legend=dict(orientation="h", y=-0.12))
    return clear_toolbar(fig)


def soft_label_comparison(soft: Mapping[str, torch.Tensor], class_names: Sequence[str],
                          title: str = "Soft labels", widget: bool = False) -> go.Figure:
    """Grouped bars: one trace (type bar) per measure, one group per class; ``soft[name]`` is ``(C,)``."""
    fig = go.FigureWidget() if widget else go.Figure()
    for name, p in soft.items():
        fig.add_trace(go.Bar(x=list(class_names), y=p.detach().float().cpu().tolist(), name=name,
                             marker_color=MEASURE_COLORS.get(name)))
    fig.update_layout(title=title, barmode="group", yaxis=dict(range=[0, 1], title="probability"),
                      width=560, height=340, margin=dict(l=40, r=10, t=50, b=40))
    return clear_toolbar(fig)


def distance_table_html(distances: Mapping[str, torch.Tensor], queries: Mapping[str, int],
                        class_names: Sequence[str]) -> str:
    """A small HTML table of distances per class and queries per measure (for an ``ipywidgets.HTML``)."""
    head = "".join(f"<th style='padding:0 8px'>{c}</th>" for c in class_names)
    rows = []
    for name, d in distances.items():
        cells = "".join(f"<td style='padding:0 8px'>{'—' if not torch.isfinite(v) else f'{float(v):.3f}'}</td>"
                        for v in d.flatten())
        rows.append(f"<tr><td><b>{name}</b></td>{cells}<td style='padding:0 8px'>{queries.get(name, 0):,}</td></tr>")
    return (f"<table><tr><th>distance to</th>{head}<th>queries</th></tr>{''.join(rows)}</table>")


def soft_label_distributions(soft: Mapping[str, torch.Tensor], bins: int = 30) -> Figure:
    """Histograms of the top probability and of the entropy for several sets of soft labels ``(N, C)``.

    Bars are shares of each set's samples (common bins, so a set piled into one bin, like the teacher's near-one-hot
    softmax, does not squash the others); entropy runs from 0 to log C (uniform). The sets' bars stand side by side
    in each bin, so two sets with the same histogram show two equal bars, and a note under the panels names the
    sets that are equal.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    num_classes = max(int(p.shape[1]) for p in soft.values())
    names = list(soft)
    probs = [soft[n].detach().float().cpu() for n in names]
    colors = [MEASURE_COLORS.get(n, f"C{i}") for i, n in enumerate(names)]
    weights = [torch.full((p.shape[0],), 1.0 / max(1, p.shape[0])).numpy() for p in probs]
    panels = [([p.max(1).values.numpy() for p in probs], (0.0, 1.0)),
              ([entropy(p).numpy() for p in probs], (0.0, math.log(num_classes)))]
    for ax, (values, span) in zip(axes, panels):
        ax.hist(values, bins=bins, range=span, weights=weights, label=names, color=colors)  # dodged, not stacked
    axes[0].set_xlabel("probability of the top class")
    axes[1].set_xlabel(f"entropy (nats; {math.log(num_classes):.2f} = uniform)")
    for ax in axes:
        ax.set_ylabel("share of samples")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    same = equal_sets(dict(zip(names, probs)))
    fig.suptitle("How soft are the labels?")
    if same:
        fig.text(0.5, 0.01, "; ".join(f"{a} and {b} give the same soft labels: their bars are equal" for a, b in same),
                 ha="center", va="bottom", fontsize=9, color="#444444")
    fig.tight_layout(rect=(0, 0.06 if same else 0, 1, 1))
    plt.close(fig)  # the returned figure is shown once, as the cell's value
    return fig


def equal_sets(values: Mapping[str, torch.Tensor], atol: float = 1e-6) -> list[tuple[str, str]]:
    """Pairs of names whose tensors are equal (same shape, within ``atol``): a figure draws them on top of each
    other unless it says so."""
    names = list(values)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
            if values[a].shape == values[b].shape and torch.allclose(values[a].float(), values[b].float(), atol=atol)]


def rank_agreement_figure(spearman: Mapping[str, torch.Tensor], top2: Mapping[str, float], bins: int = 21) -> Figure:
    """Left: histogram of per-sample Spearman ρ against the teacher's softmax; right: top-2 agreement bars."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    for name, rho in spearman.items():
        axes[0].hist(rho.detach().float().cpu().numpy(), bins=bins, range=(-1, 1), alpha=0.5,
                     label=f"{name} (mean {float(rho.mean()):.2f})", color=MEASURE_COLORS.get(name))
    axes[0].set_xlabel("Spearman ρ with the teacher's hidden softmax (per sample)")
    axes[0].set_ylabel("samples")
    axes[0].legend(fontsize=8)
    names = list(top2)
    axes[1].bar(names, [top2[n] for n in names], color=[MEASURE_COLORS.get(n, "#999") for n in names])
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("top-2 agreement")
    fig.tight_layout()
    plt.close(fig)  # the returned figure is shown once, as the cell's value
    return fig


def accuracy_vs_queries(points: Mapping[str, Sequence[tuple[float, float]]],
                        baselines: Mapping[str, float] | None = None,
                        title: str = "Student accuracy against the query budget", min_span: float = 6.0) -> Figure:
    """Lines of (queries per sample, test accuracy) per measure, with horizontal baselines (e.g. plain KD).

    A measure whose points all cost 0 queries (e.g. SD) is a horizontal line too: a log axis has no 0. The y axis
    spans at least ``min_span`` points, so differences of a few tenths (one seed's noise) do not fill the plot.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    ys: list[float] = []
    styles = ["--", ":", "-."]
    lines = dict(baselines or {})
    for name, pts in points.items():
        pts = sorted(pts)
        if pts and all(q == 0 for q, _ in pts):
            lines[f"{name} (0 queries)"] = pts[-1][1]
            continue
        ax.plot([q for q, _ in pts], [100 * a for _, a in pts], "o-", label=name, color=MEASURE_COLORS.get(name))
        ys += [100 * a for _, a in pts]
    for i, (name, acc) in enumerate(lines.items()):
        ax.axhline(100 * acc, ls=styles[i % 3], color=MEASURE_COLORS.get(name.split(" (")[0], "k"), alpha=0.7,
                   label=name)
        ys.append(100 * acc)
    notes = _equal_accuracy_notes(points, lines)
    if notes:  # equal accuracies sit on one line: say so, or the learner sees one where there are two
        fig.text(0.5, 0.01, "\n".join(notes), fontsize=8, color="#444444", ha="center", va="bottom")
    if ys:
        mid, half = (max(ys) + min(ys)) / 2, max(min_span, max(ys) - min(ys) + 1.0) / 2
        ax.set_ylim(max(0.0, mid - half), min(100.0, mid + half))
    ax.set_xscale("log")
    ax.set_xlabel("teacher queries per soft-labelled sample (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04 * len(notes), 1, 1))
    plt.close(fig)  # the returned figure is shown once, as the cell's value
    return fig


def accuracy_bars(accuracies: Mapping[str, float], title: str = "Students on the same training data") -> Figure:
    """Horizontal bars of test accuracy per student, on an axis from 0 to 100 % (differences at true scale)."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(accuracies)))
    names = list(accuracies)
    vals = [100 * accuracies[n] for n in names]
    ax.barh(names, vals, color="#4C72B0")
    for i, v in enumerate(vals):
        ax.text(v + 1.0, i, f"{v:.2f}%", va="center", fontsize=9)
    ax.set_xlim(0.0, 112.0)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("test accuracy (%)")
    ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)  # the returned figure is shown once, as the cell's value
    return fig


def _equal_accuracy_notes(points: Mapping[str, Sequence[tuple[float, float]]], lines: Mapping[str, float],
                          tol: float = 5e-5) -> list[str]:
    """"BD at 20 queries = SD (0 queries): 76.35 %" for every measured point that equals a horizontal line."""
    notes = []
    for name, pts in points.items():
        for q, acc in pts:
            if q == 0:
                continue
            for line, level in lines.items():
                if abs(acc - level) <= tol:
                    notes.append(f"{name} at {q:g} queries = {line}: both {100 * acc:.2f}%")
    return notes
