"""Leaderboard figures: accuracy against teacher queries (log scale), and accuracy by access level.

Both take a :class:`labkit.studies.leaderboard.Leaderboard` and return a plotly figure; reported
figures from the papers are drawn as hollow diamonds and labelled "reported".
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from labkit.studies.leaderboard import ACCESS_ORDER, EntrySummary, Leaderboard, Stat, pareto_front

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
    reported = [e for e in rows if show_reported and (e.reported or {}).get("queries_approx")
                and (e.reported or {}).get("student_acc") is not None]
    rep_labels = [f"{e.key} (reported{'' if (e.reported or {}).get('verified', True) else '†'})" for e in reported]
    reps = [e.reported or {} for e in reported]
    spots = place_labels([(_mean(e.queries), _pct(_mean(e.student_acc)) or 0.0, e.key) for e in querying]
                         + [(float(r["queries_approx"]), 100 * float(r["student_acc"]), lab)
                            for r, lab in zip(reps, rep_labels)])
    text_pos, rep_pos = spots[:len(querying)], spots[len(querying):]
    for e, pos in zip(querying, text_pos):
        q = e.queries or Stat.of([0.0])
        fig.add_trace(go.Scatter(
            x=[q.mean], y=[_pct(_mean(e.student_acc))], mode="markers+text" if pos else "markers",
            name=e.key if pos else f"{e.key} (label hidden: hover)", text=[e.key],
            textposition=pos or "top center", legendgroup=e.access,
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
    for i, e in enumerate(e for e in rows if e.queries is not None and _mean(e.queries) == 0):
        # a legend entry, not an annotation: rows at the same accuracy would print their names over each other
        fig.add_trace(go.Scatter(x=[lo / 3, hi * 3], y=[_pct(_mean(e.student_acc))] * 2, mode="lines",
                                 name=f"{e.key}: 0 queries", line={"dash": ["dash", "dashdot", "longdash"][i % 3],
                                                                   "color": ACCESS_COLORS["none"], "width": 1.5},
                                 hovertemplate=f"{e.key}: %{{y:.2f}}% with 0 queries<extra></extra>"))
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
        for e, label, pos in zip(reported, rep_labels, rep_pos):
            rep = e.reported or {}
            fig.add_trace(go.Scatter(
                x=[rep["queries_approx"]], y=[_pct(rep["student_acc"])], mode="markers+text" if pos else "markers",
                name=label if pos else f"{label} (label hidden: hover)", text=[label],
                textposition=pos or "bottom center",
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


#: label positions tried in turn, with the label box's offset from its point in pixels (dx of its centre, dy)
_LABEL_SPOTS = (("top center", 0.0, 14.0), ("bottom center", 0.0, -14.0), ("middle right", 1.0, 0.0),
                ("middle left", -1.0, 0.0))


def place_labels(points: Sequence[tuple[float, float, str]], width_px: float = 800.0, height_px: float = 360.0,
                 char_px: float = 6.5, line_px: float = 14.0) -> list[str | None]:
    """Text positions for point labels on a log-x, linear-y plot that do not overlap each other or the markers.

    ``points``: (x > 0, y in %, label). Greedy, highest accuracy first; each label tries above, below, right and
    left of its point; a label that fits nowhere gets ``None`` (draw the marker alone; the name is in the hover and
    the legend). Sizes are approximate pixels of a ``width_px`` × ``height_px`` plot area.
    """
    import math

    if not points:
        return []
    lx = [math.log10(max(x, 1.0)) for x, _, _ in points]
    ys = [y for _, y, _ in points]
    x_span = max(max(lx) - min(lx) + 0.8, 1e-6)
    y_span = max(max(ys) - min(ys) + 10.0, 1e-6)
    px = [(v - min(lx) + 0.4) / x_span * width_px for v in lx]
    py = [(v - min(ys) + 5.0) / y_span * height_px for v in ys]
    taken: list[tuple[float, float, float, float]] = [(x - 6, y - 6, x + 6, y + 6) for x, y in zip(px, py)]
    out: list[str | None] = [None] * len(points)
    for i in sorted(range(len(points)), key=lambda k: -ys[k]):
        w = char_px * len(points[i][2])
        for pos, dx, dy in _LABEL_SPOTS:
            cx = px[i] + dx * (w / 2 + 8)
            cy = py[i] + dy
            box = (cx - w / 2, cy - line_px / 2, cx + w / 2, cy + line_px / 2)
            others = [t for j, t in enumerate(taken) if j != i]
            if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in others):
                out[i] = pos
                taken.append(box)
                break
    return out


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
            insidetextanchor="middle",  # mid-bar, clear of the error bar at the top
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
        from labkit.core.errors import UnknownNameError

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
