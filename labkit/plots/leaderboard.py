"""Leaderboard figures: accuracy against teacher queries (log scale), and accuracy by access level.

Both take a :class:`labkit.leaderboard.Leaderboard` and return a plotly figure; reported
figures from the papers are drawn as hollow diamonds and labelled "reported".
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from ..leaderboard import ACCESS_ORDER, EntrySummary, Leaderboard, Stat, pareto_front

#: One colour per access level, shared by every leaderboard figure.
ACCESS_COLORS: dict[str, str] = {"white": "#8172b3", "score": "#4c72b0", "decision": "#dd8452", "none": "#7f7f7f"}
#: One marker per data access.
DATA_SYMBOLS: dict[str, str] = {"labeled": "circle", "unlabeled": "square", "none": "triangle-up"}


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _mean(s: Stat | None) -> float:
    """A row's mean (0 for a statistic the row lacks: the figures only draw measured rows)."""
    return 0.0 if s is None else s.mean


def _std_pct(e: EntrySummary) -> float:
    s = e.student_acc
    return 0.0 if s is None or s.std is None else 100.0 * s.std


def accuracy_vs_queries(board: Leaderboard, show_reported: bool = True, show_front: bool = True,
                        front: Sequence[int] | None = None) -> go.Figure:
    """Test accuracy against teacher queries on a log axis, every measured method on one plot.

    Error bars are ± one standard deviation over seeds. Methods that never query the teacher
    (the student alone) are a dashed horizontal line; the teacher is a dotted one. ``show_front``
    joins the Pareto front (fewest queries for the accuracy); pass ``front`` (indices into
    ``board.measured()`` rows that query) to draw your own.
    """
    fig = go.Figure()
    rows = board.measured()
    querying = [e for e in rows if _mean(e.queries) > 0]
    by_x = sorted(range(len(querying)), key=lambda i: _mean(querying[i].queries))
    text_pos = {querying[i].key: ("top center" if r % 2 == 0 else "bottom center") for r, i in enumerate(by_x)}
    for e in querying:
        q = e.queries or Stat.of([0.0])
        fig.add_trace(go.Scatter(
            x=[q.mean], y=[_pct(_mean(e.student_acc))], mode="markers+text", name=e.key, text=[e.key],
            textposition=text_pos[e.key], legendgroup=e.access,
            marker={"size": 12, "color": ACCESS_COLORS.get(e.access, "#333333"),
                    "symbol": DATA_SYMBOLS.get(e.data_access, "circle"), "line": {"width": 1, "color": "white"}},
            error_y={"type": "data", "array": [_std_pct(e)], "visible": True},
            error_x={"type": "data", "array": [q.std or 0.0], "visible": bool(q.std)},
            customdata=[[e.access, e.data_access, _mean(e.transfer_set_size)]],
            hovertemplate=(f"<b>{e.key}</b><br>queries %{{x:,.0f}}<br>test accuracy %{{y:.2f}}%<br>"
                           "access %{customdata[0]}, data %{customdata[1]}<br>transfer set %{customdata[2]:,.0f}"
                           "<extra></extra>")))
    xs = [_mean(e.queries) for e in querying]
    lo, hi = (min(xs), max(xs)) if xs else (1.0, 10.0)
    for e in rows:
        if e.queries is not None and _mean(e.queries) == 0:
            fig.add_hline(y=_pct(_mean(e.student_acc)), line_dash="dash", line_color=ACCESS_COLORS["none"],
                          annotation_text=f"{e.key}: 0 queries", annotation_position="bottom right")
    teacher_acc = board.teacher.get("test_acc")
    if teacher_acc is not None:
        fig.add_hline(y=_pct(float(teacher_acc)), line_dash="dot", line_color="black",
                      annotation_text=f"teacher {board.teacher.get('arch', '')}", annotation_position="top left")
    if show_front and len(querying) > 1:
        idx = list(front) if front is not None else pareto_front(xs, [_mean(e.student_acc) for e in querying])
        fig.add_trace(go.Scatter(x=[xs[i] for i in idx], y=[_pct(_mean(querying[i].student_acc)) for i in idx],
                                 mode="lines", name="Pareto front",
                                 line={"color": "#55a868", "width": 2, "dash": "dot"},
                                 hoverinfo="skip"))
    if show_reported:
        for e in rows:
            rep = e.reported or {}
            if rep.get("queries_approx") and rep.get("student_acc") is not None:
                mark = "" if rep.get("verified", True) else "†"
                fig.add_trace(go.Scatter(
                    x=[rep["queries_approx"]], y=[_pct(rep["student_acc"])], mode="markers+text",
                    name=f"{e.key} (reported{mark})", text=[f"{e.key} (reported{mark})"], textposition="bottom center",
                    marker={"size": 11, "symbol": "diamond-open", "color": ACCESS_COLORS.get(e.access, "#333333"),
                            "line": {"width": 2}},
                    hovertemplate=f"{e.key}: reported {100 * rep['student_acc']:.2f}% at about %{{x:,.0f}} queries"
                                  f"<br>{rep.get('paper', '')}<extra></extra>"))
                lo, hi = min(lo, rep["queries_approx"]), max(hi, rep["queries_approx"])
    fig.update_xaxes(type="log", title_text="teacher queries (images sent to the teacher, log scale)",
                     range=[max(0.0, _log10(lo) - 0.4), _log10(hi) + 0.4])
    fig.update_yaxes(title_text="student test accuracy (%)")
    fig.update_layout(title=f"Accuracy against queries — {board.dataset}, profile {board.profile}, "
                            f"{len(board.seeds)} seed(s); colour = access level, shape = data",
                      height=480, margin={"t": 60, "l": 60, "r": 20, "b": 60}, legend={"groupclick": "toggleitem"})
    return fig


def _log10(x: float) -> float:
    import math

    return math.log10(max(x, 1.0))


def accuracy_by_access(board: Leaderboard, show_reported: bool = True) -> go.Figure:
    """Bars of test accuracy (± std over seeds), grouped by the teacher's access level; reported figures as ◇."""
    rows = sorted(board.measured(), key=lambda e: (ACCESS_ORDER.index(e.access) if e.access in ACCESS_ORDER else 9,
                                                   -_mean(e.student_acc)))
    fig = go.Figure()
    for access in ACCESS_ORDER:
        group = [e for e in rows if e.access == access]
        if not group:
            continue
        fig.add_trace(go.Bar(
            x=[[access] * len(group), [e.key for e in group]], y=[_pct(_mean(e.student_acc)) for e in group],
            name=f"{access} access", marker_color=ACCESS_COLORS.get(access, "#333333"),
            error_y={"type": "data", "array": [_std_pct(e) for e in group], "visible": True},
            text=[f"{_pct(_mean(e.student_acc)):.1f}" for e in group], textposition="inside",
            hovertemplate="%{x}<br>test accuracy %{y:.2f}%<extra></extra>"))
    if show_reported:
        reps = [e for e in rows if e.reported and e.reported.get("student_acc") is not None]
        rep = [e.reported or {} for e in reps]
        if reps:
            fig.add_trace(go.Scatter(
                x=[[e.access for e in reps], [e.key for e in reps]],
                y=[_pct(r["student_acc"]) for r in rep], mode="markers", name="paper (reported)",
                marker={"symbol": "diamond-open", "size": 12, "color": "black", "line": {"width": 2}},
                text=[("" if r.get("verified", True) else "† unverified; ") + str(r.get("paper")) for r in rep],
                hovertemplate="%{x}: reported %{y:.2f}%<br>%{text}<extra></extra>"))
    teacher_acc = board.teacher.get("test_acc")
    if teacher_acc is not None:
        fig.add_hline(y=_pct(float(teacher_acc)), line_dash="dot", line_color="black",
                      annotation_text="teacher", annotation_position="top left")
    fig.update_yaxes(title_text="student test accuracy (%)", range=[0, 100])
    fig.update_layout(title=f"Accuracy by the teacher's access level — {board.dataset}, profile {board.profile}",
                      barmode="group", height=440, margin={"t": 60, "l": 60, "r": 20, "b": 80})
    return fig


#: One colour per rung of a method's ladder.
RUNG_COLORS: dict[str, str] = {"paper": "#4c72b0", "baseline": "#7f7f7f", "addition": "#dd8452",
                               "combined": "#c44e52"}


def ladder_figure(board: Leaderboard, family: str, own: dict[str, float] | None = None,
                  own_label: str = "your run") -> go.Figure:
    """One method's ladder: test accuracy (± std over seeds) of the paper's mechanism alone, each baseline and
    addition, and the combined row, as horizontal bars in ladder order; ``own`` maps row keys to the learner's own
    accuracy (a fraction), drawn as a black diamond on that row. Queries per row are in the hover text."""
    ladders = board.ladders()
    if family not in ladders:
        from ..errors import UnknownNameError

        raise UnknownNameError("leaderboard ladder", family, list(ladders))
    rows = [e for e in ladders[family] if e.measured]
    labels = [e.key for e in rows][::-1]  # the paper row on top
    fig = go.Figure()
    for rung, color in RUNG_COLORS.items():
        group = [e for e in rows if e.rung == rung]
        if not group:
            continue
        fig.add_trace(go.Bar(
            y=[e.key for e in group], x=[_pct(_mean(e.student_acc)) for e in group], orientation="h",
            name=rung, marker_color=color,
            error_x={"type": "data", "array": [_std_pct(e) for e in group], "visible": True},
            text=[f"{_pct(_mean(e.student_acc)):.1f}%" for e in group], textposition="inside",
            insidetextanchor="start",
            customdata=[[f"{_mean(e.queries):,.0f}", e.row_note or e.title] for e in group],
            hovertemplate="%{y}: %{x:.2f}%<br>%{customdata[0]} queries<br>%{customdata[1]}<extra></extra>"))
    if own:
        keys = [k for k in own if k in labels]
        if keys:
            fig.add_trace(go.Scatter(y=keys, x=[_pct(own[k]) for k in keys], mode="markers", name=own_label,
                                     marker={"symbol": "diamond", "size": 14, "color": "black"},
                                     hovertemplate="%{y}: " + own_label + " %{x:.2f}%<extra></extra>"))
    teacher_acc = board.teacher.get("test_acc")
    if teacher_acc is not None:
        fig.add_vline(x=_pct(float(teacher_acc)), line_dash="dot", line_color="black",
                      annotation_text="teacher", annotation_position="top")
    fig.update_yaxes(categoryorder="array", categoryarray=labels)
    fig.update_xaxes(title_text="student test accuracy (%)", range=[0, 100])
    fig.update_layout(title=f"Where the accuracy comes from: the {family} ladder ({board.profile} profile, seeds "
                            f"{', '.join(map(str, board.seeds))})",
                      height=140 + 48 * len(rows), margin={"t": 60, "l": 170, "r": 20, "b": 50},
                      legend={"orientation": "h", "y": -0.25})
    return fig
