"""Notebook 09's figures: the teacher's class balance per IDEAL round, and accuracy against queries beside the
committed decision-only, data-free rows and the reported figures of later work."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from labkit.studies.leaderboard import Leaderboard
from labkit.studies.paper_figures import ReportedFigure
from labkit.teaching.plots.layout import clear_toolbar, label_points

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
    return clear_toolbar(fig)


def accuracy_vs_queries_figure(curve: Sequence[tuple[float, float]], final: tuple[float, float],
                               board: Leaderboard | None, reported: Sequence[ReportedFigure] = (),
                               rows: Sequence[str] = COMPARED_ROWS) -> go.Figure:
    """Test accuracy (%) against teacher queries on a log axis: IDEAL's guide student along the rounds
    (``curve``: (queries, accuracy)), the reported student (``final``), the committed ``rows`` of ``board``
    (mean ± std over seeds) and the ``reported`` figures of later work (hollow diamonds, labelled reported).

    A reported figure that gives no query count has no place on the query axis: it is drawn in a grey strip to the
    right of the plot, headed "queries not given", on the same accuracy axis.
    """
    fig = go.Figure()
    # this run's star first, hollow: a committed marker at nearly the same place stays visible inside it
    fig.add_trace(go.Scatter(x=[final[0]], y=[100 * final[1]], mode="markers", name="IDEAL student (this run)",
                             marker={"symbol": "star-open", "size": 22, "color": "#55a868", "line": {"width": 2.5}}))
    if curve:
        fig.add_trace(go.Scatter(x=[q for q, _ in curve], y=[100 * a for _, a in curve], mode="lines+markers",
                                 name="IDEAL guide student, by round (this run)", line={"color": "#55a868"}))
    xs = [q for q, _ in curve] + [final[0]]
    if board is not None:
        by_key = {e.key: e for e in board.entries}
        for key in rows:
            e = by_key.get(key)
            if e is None or e.student_acc is None or e.queries is None:
                continue
            std = 0.0 if e.student_acc.std is None else 100 * e.student_acc.std
            fig.add_trace(go.Scatter(x=[max(1.0, e.queries.mean)], y=[100 * e.student_acc.mean],
                                     mode="markers+text", text=[key], name=f"{key} (committed laptop board)",
                                     error_y={"type": "data", "array": [std]}, marker={"size": 9}))
            xs.append(max(1.0, e.queries.mean))
    without_budget = []
    for f in reported:
        if f.student_acc is None:
            continue
        name = f"{f.entry} ({f.label}{', queries not given' if not f.queries_approx else ''})"
        if f.queries_approx:
            fig.add_trace(go.Scatter(x=[f.queries_approx], y=[100 * f.student_acc], mode="markers", name=name,
                                     marker={"symbol": "diamond-open", "size": 12, "line": {"width": 2}}))
            xs.append(float(f.queries_approx))
        else:
            without_budget.append((f, name))
    positive = [x for x in xs if x > 0] or [1.0, 10.0]
    lo, hi = math.log10(min(positive)) - 0.3, math.log10(max(positive)) + 0.3
    main_domain = (0.0, STRIP_DOMAIN[0] - 0.03) if without_budget else (0.0, 1.0)
    for i, (f, name) in enumerate(without_budget):
        fig.add_trace(go.Scatter(x=[(i + 1) / (len(without_budget) + 1)], y=[100 * float(f.student_acc or 0.0)],
                                 mode="markers", name=name, xaxis="x2", yaxis="y",
                                 marker={"symbol": "diamond-open", "size": 12, "line": {"width": 2}},
                                 hovertemplate=f"{f.entry}: reported %{{y:.2f}}%, queries not given<extra></extra>"))
    if without_budget:
        fig.update_layout(xaxis2={"domain": list(STRIP_DOMAIN), "range": [0, 1], "anchor": "y", "showticklabels": False,
                                  "showgrid": False, "zeroline": False, "title": {"text": "queries<br>not given"}})
        fig.add_shape(type="rect", xref="x2 domain", yref="y domain", x0=0, x1=1, y0=0, y1=1, layer="below",
                      fillcolor="#eeeeee", line={"width": 0})
    fig.update_layout(xaxis={"type": "log", "title": {"text": "teacher queries (log scale)"}, "range": [lo, hi],
                             "domain": list(main_domain)},
                      yaxis={"title": {"text": "test accuracy %"}, "range": [0, 100]},
                      title="Decision box, no data: accuracy against queries", height=520,
                      margin={"l": 60, "r": 20, "b": 60})
    clear_toolbar(fig)
    return label_points(fig)


#: where the strip of reported figures without a query count sits (x domain of the figure's second x axis)
STRIP_DOMAIN = (0.86, 1.0)


def points_without_budget_on_query_axis(fig: go.Figure) -> list[str]:
    """Names of traces marked "queries not given" that are drawn on the query axis itself (a made-up budget)."""
    return [t.name for t in fig.data if "queries not given" in (t.name or "") and (t.xaxis or "x") == "x"]
