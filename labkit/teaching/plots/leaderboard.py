"""Leaderboard figures: accuracy against teacher queries (log scale), and accuracy by access level.

Both take a :class:`labkit.studies.leaderboard.Leaderboard` and return a plotly figure; reported
figures from the papers are drawn as hollow diamonds and labelled "reported".
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from labkit.studies.leaderboard import ACCESS_ORDER, EntrySummary, Leaderboard, Stat, pareto_front
from labkit.teaching.plots.layout import LABEL_SPOTS, clear_toolbar, label_points, place_at_pixels

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
    ``board.measured()`` rows that query) to draw your own. Colour is the access level and shape the data access
    (legend-only keys); each point carries its name where it has room, else its name is in the legend.
    """
    fig = go.Figure()
    rows = board.measured()
    querying = [e for e in rows if _mean(e.queries) > 0]
    reported = [e for e in rows if show_reported and (e.reported or {}).get("queries_approx")
                and (e.reported or {}).get("student_acc") is not None]
    xs = [_mean(e.queries) for e in querying]
    accs = [_pct(_mean(e.student_acc)) or 0.0 for e in querying]
    spread = [a - _std_pct(e) for a, e in zip(accs, querying)] + [a + _std_pct(e) for a, e in zip(accs, querying)]
    if show_front and len(querying) > 1:  # drawn first, under the markers, wide and solid so it reads as a line
        idx = list(front) if front is not None else pareto_front(xs, [_mean(e.student_acc) for e in querying])
        idx = sorted(idx, key=lambda i: xs[i])
        fig.add_trace(go.Scatter(x=[xs[i] for i in idx], y=[accs[i] for i in idx], mode="lines", name="Pareto front",
                                 line={"color": "#2e8b57", "width": 4}, opacity=0.45, hoverinfo="skip"))
    for e in querying:
        q = e.queries or Stat.of([0.0])
        fig.add_trace(go.Scatter(
            x=[q.mean], y=[_pct(_mean(e.student_acc))], mode="markers+text", name=e.key, text=[e.key],
            showlegend=False,
            marker={"size": 12, "color": ACCESS_COLORS.get(e.access, "#333333"),
                    "symbol": DATA_SYMBOLS.get(e.data_access, "circle"), "line": {"width": 1, "color": "white"}},
            error_y={"type": "data", "array": [_std_pct(e)], "visible": True},
            error_x={"type": "data", "array": [q.std or 0.0], "visible": bool(q.std)},
            customdata=[[e.access, e.data_access, _mean(e.transfer_set_size)]],
            hovertemplate=(f"<b>{e.key}</b><br>queries %{{x:,.0f}}<br>test accuracy %{{y:.2f}}%<br>"
                           "access %{customdata[0]}, data %{customdata[1]}<br>transfer set %{customdata[2]:,.0f}"
                           "<extra></extra>")))
    lo, hi = (min(xs), max(xs)) if xs else (1.0, 10.0)
    ys = list(accs) + spread  # the axis shows every error bar whole
    if show_reported:
        for e in reported:
            rep = e.reported or {}
            label = f"{e.key} (reported{'' if rep.get('verified', True) else '†'})"
            fig.add_trace(go.Scatter(
                x=[rep["queries_approx"]], y=[_pct(rep["student_acc"])], mode="markers+text", name=label,
                text=[label], showlegend=False,
                marker={"size": 11, "symbol": "diamond-open", "color": ACCESS_COLORS.get(e.access, "#333333"),
                        "line": {"width": 2}},
                hovertemplate=f"{e.key}: reported {100 * rep['student_acc']:.2f}% at about %{{x:,.0f}} queries"
                              f"<br>{rep.get('paper', '')}<extra></extra>"))
            lo, hi = min(lo, rep["queries_approx"]), max(hi, rep["queries_approx"])
            ys.append(100 * float(rep["student_acc"]))
    for i, e in enumerate(e for e in rows if e.queries is not None and _mean(e.queries) == 0):
        # a legend entry, not an annotation: rows at the same accuracy would print their names over each other
        fig.add_trace(go.Scatter(x=[lo / 3, hi * 3], y=[_pct(_mean(e.student_acc))] * 2, mode="lines",
                                 name=f"{e.key}: 0 queries", line={"dash": ["dash", "dashdot", "longdash"][i % 3],
                                                                   "color": ACCESS_COLORS["none"], "width": 1.5},
                                 hovertemplate=f"{e.key}: %{{y:.2f}}% with 0 queries<extra></extra>"))
        ys.append(_pct(_mean(e.student_acc)) or 0.0)
    teacher_acc = board.teacher.get("test_acc")
    if teacher_acc is not None:
        fig.add_hline(y=_pct(float(teacher_acc)), line_dash="dot", line_color="black",
                      annotation_text=f"teacher {board.teacher.get('arch', '')}", annotation_position="top right")
        ys.append(100 * float(teacher_acc))
    _legend_keys(fig, querying)
    y_lo = max(0.0, min(ys, default=0.0) - 4.0) if ys else 0.0
    y_hi = min(101.0, max(ys, default=100.0) + 4.0) if ys else 100.0
    fig.update_xaxes(type="log", title_text="teacher queries (images sent to the teacher, log scale)",
                     range=[max(0.0, _log10(lo) - 0.4), _log10(hi) + 0.4])
    fig.update_yaxes(title_text="student test accuracy (%)", range=[y_lo, y_hi])
    fig.update_layout(title=f"Accuracy against queries — {board.dataset}, profile {board.profile}, "
                            f"{len(board.seeds)} seed(s); colour = access level, shape = data",
                      height=PLOT_HEIGHT_PX, margin={"t": 60, "l": 60, "r": 20, "b": 60})
    clear_toolbar(fig)
    return label_points(fig)


#: height of the accuracy-against-queries figure before its legend (added below the plot, so it never scrolls)
PLOT_HEIGHT_PX = 760


def _legend_keys(fig: go.Figure, rows: Sequence[EntrySummary]) -> None:
    """Legend-only entries that say what a colour (access level) and a shape (data access) mean."""
    for access in ACCESS_ORDER:
        if any(e.access == access for e in rows):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"{access} access",
                                     marker={"size": 10, "color": ACCESS_COLORS.get(access, "#333333")}))
    for data, symbol in DATA_SYMBOLS.items():
        if any(e.data_access == data for e in rows):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"data: {data}",
                                     marker={"size": 10, "color": "#bbbbbb", "symbol": symbol,
                                             "line": {"width": 1, "color": "#555555"}}))


#: label positions tried in turn (kept under its old name for callers of the leaderboard module)
_LABEL_SPOTS = LABEL_SPOTS


def place_labels(points: Sequence[tuple[float, float, str]], width_px: float = 800.0, height_px: float = 360.0,
                 char_px: float = 6.5, line_px: float = 14.0) -> list[str | None]:
    """Text positions for point labels on a log-x, linear-y plot that do not overlap each other or the markers.

    ``points``: (x > 0, y in %, label). Greedy, highest accuracy first; each label tries above, below, right and
    left of its point; a label that fits nowhere gets ``None`` (draw the marker alone; the name is in the hover and
    the legend). Sizes are approximate pixels of a ``width_px`` × ``height_px`` plot area whose axes span the points
    with 0.4 decades and 5 points to spare. For a plotly figure with its axes set, use
    :func:`labkit.teaching.plots.layout.place_plotly_labels`, which reads the ranges and sizes from the figure.
    """
    import math

    if not points:
        return []
    lx = [math.log10(max(x, 1.0)) for x, _, _ in points]
    ys = [y for _, y, _ in points]
    x_span = max(max(lx) - min(lx) + 0.8, 1e-6)
    y_span = max(max(ys) - min(ys) + 10.0, 1e-6)
    pixels = [((v - min(lx) + 0.4) / x_span * width_px, (y - min(ys) + 5.0) / y_span * height_px)
              for v, y in zip(lx, ys)]
    return place_at_pixels(pixels, [t for _, _, t in points], ys, char_px, line_px)


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
            # the value at the bar's foot, under its error bar; a bar too short for that gets it above the error bar
            text=[f"{_pct(_mean(e.student_acc)):.1f}" if _fits_under_error(e) else "" for e in group],
            textposition="inside", insidetextanchor="start",
            hovertemplate="%{x}<br>test accuracy %{y:.2f}%<extra></extra>"))
        short = [e for e in group if not _fits_under_error(e)]
        if short:
            fig.add_trace(go.Scatter(
                x=[[access] * len(short), [e.key for e in short]],
                y=[(_pct(_mean(e.student_acc)) or 0.0) + _std_pct(e) + 1.0 for e in short], mode="text",
                text=[f"{_pct(_mean(e.student_acc)):.1f}" for e in short], textposition="top center",
                showlegend=False, hoverinfo="skip"))
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
    return clear_toolbar(fig)


def _fits_under_error(e: EntrySummary, text_pts: float = 15.0) -> bool:
    """Whether a bar's value, written upright at its foot, stays under the bar's error bar (bars run 0-100 %)."""
    return (_pct(_mean(e.student_acc)) or 0.0) - _std_pct(e) >= text_pts


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
    return clear_toolbar(fig)


def leaderboard_table(board: Leaderboard) -> str:
    """The leaderboard as one compact HTML table (a line per measured row: access, data, test accuracy ± std, the
    reported figure, queries), about 25 px a row; the full notes stay in ``board.to_markdown()``."""
    head = ("<tr><th>method</th><th>rung</th><th>access</th><th>data</th><th>test acc. %</th><th>reported %</th>"
            "<th>queries</th></tr>")
    lines = []
    for e in board.measured():
        rep = (e.reported or {}).get("student_acc")
        mark = "" if (e.reported or {}).get("verified", True) else "†"
        acc = f"{_pct(_mean(e.student_acc)):.2f} ± {_std_pct(e):.2f}"
        lines.append(f"<tr><td><code>{e.key}</code></td><td>{e.rung or ''}</td><td>{e.access}</td>"
                     f"<td>{e.data_access}</td><td style='text-align:right'>{acc}</td>"
                     f"<td style='text-align:right'>{'—' if rep is None else f'{100 * rep:.2f}{mark}'}</td>"
                     f"<td style='text-align:right'>{_mean(e.queries):,.0f}</td></tr>")
    caption = (f"<caption style='text-align:left'>{board.dataset}, profile {board.profile}, seeds "
               f"{', '.join(map(str, board.seeds))}; † a secondary figure, quoted by a later paper</caption>")
    return f"<table style='font-size:12px;line-height:1.2'>{caption}{head}{''.join(lines)}</table>"
