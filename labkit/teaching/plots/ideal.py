"""Notebook 09's figures: the teacher's class balance per IDEAL round, and accuracy against queries beside the
committed decision-only, data-free rows and the reported figures of later work."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from labkit.studies.leaderboard import Leaderboard
from labkit.studies.paper_figures import ReportedFigure

#: the committed rows notebook 09 compares IDEAL with (decision box, no data)
COMPARED_ROWS: tuple[str, ...] = ("ideal", "ideal+round-samples", "zsdb3kd-paper", "zsdb3kd+bank", "noise-kd")


def class_balance_figure(history: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> go.Figure:
    """A heatmap: for every round (x) the share of the round's images the teacher put in each class (y)."""
    rounds = [int(h["round"]) for h in history]
    shares = []
    for h in history:
        counts = [float(c) for c in h["teacher_counts"]]
        total = sum(counts) or 1.0
        shares.append([c / total for c in counts])
    z = [[shares[r][k] for r in range(len(rounds))] for k in range(len(class_names))]
    fig = go.Figure(go.Heatmap(z=z, x=rounds, y=list(class_names), colorscale="Blues", zmin=0, zmax=1,
                               colorbar={"title": "share"}))
    fig.update_layout(title="What the teacher answered for each round's images", xaxis_title="round",
                      height=360, margin={"t": 50, "l": 110, "r": 20, "b": 40})
    return fig


def accuracy_vs_queries_figure(curve: Sequence[tuple[float, float]], final: tuple[float, float],
                               board: Leaderboard | None, reported: Sequence[ReportedFigure] = (),
                               rows: Sequence[str] = COMPARED_ROWS) -> go.Figure:
    """Test accuracy (%) against teacher queries on a log axis: IDEAL's guide student along the rounds
    (``curve``: (queries, accuracy)), the reported student (``final``), the committed ``rows`` of ``board``
    (mean ± std over seeds) and the ``reported`` figures of later work (hollow diamonds, labelled reported)."""
    fig = go.Figure()
    if curve:
        fig.add_trace(go.Scatter(x=[q for q, _ in curve], y=[100 * a for _, a in curve], mode="lines+markers",
                                 name="IDEAL guide student, by round (this run)", line={"color": "#55a868"}))
    fig.add_trace(go.Scatter(x=[final[0]], y=[100 * final[1]], mode="markers", name="IDEAL student (this run)",
                             marker={"symbol": "star", "size": 16, "color": "#55a868"}))
    if board is not None:
        by_key = {e.key: e for e in board.entries}
        for key in rows:
            e = by_key.get(key)
            if e is None or e.student_acc is None or e.queries is None:
                continue
            std = 0.0 if e.student_acc.std is None else 100 * e.student_acc.std
            fig.add_trace(go.Scatter(x=[max(1.0, e.queries.mean)], y=[100 * e.student_acc.mean], mode="markers",
                                     name=f"{key} (committed laptop board)", error_y={"type": "data", "array": [std]},
                                     marker={"size": 11}))
    for f in reported:
        if f.student_acc is None:
            continue
        x = f.queries_approx or (final[0] if final[0] > 0 else 1.0)
        fig.add_trace(go.Scatter(x=[x], y=[100 * f.student_acc], mode="markers",
                                 name=f"{f.entry} ({f.label}{', queries not given' if not f.queries_approx else ''})",
                                 marker={"symbol": "diamond-open", "size": 12}))
    fig.update_xaxes(type="log", title="teacher queries (log scale)")
    fig.update_yaxes(title="test accuracy %", range=[0, 100])
    fig.update_layout(title="Decision box, no data: accuracy against queries", height=460,
                      legend={"font": {"size": 10}})
    return fig
