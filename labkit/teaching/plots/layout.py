"""Plotly layout rules every notebook figure follows: the title clears the toolbar, point labels never collide,
and a dashboard's figure fits a 1280 × 800 window together with its controls."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

#: height of plotly's toolbar (the mode bar, top right) in pixels, its padding included
TOOLBAR_PX = 36
#: height of one line of a plotly title at :data:`TITLE_FONT_PX`
TITLE_LINE_PX = 20
#: the title's font size
TITLE_FONT_PX = 15
#: figure width the figures are laid out for when they do not fix one (a notebook's output area at 1280 px)
ASSUMED_WIDTH_PX = 760
#: the notebook's visible height in JupyterLab in a 1280 × 800 window (menu, tabs, toolbar and status bar taken off)
NOTEBOOK_VIEW_PX = 640
#: height of one row of ipywidgets controls (a slider, a dropdown, a one-line readout)
CONTROL_ROW_PX = 36

#: label positions tried in turn, with the label box's offset from its point in pixels (dx of its centre, dy)
LABEL_SPOTS = (("top center", 0.0, 14.0), ("bottom center", 0.0, -14.0), ("middle right", 1.0, 0.0),
               ("middle left", -1.0, 0.0), ("top right", 1.0, 14.0), ("top left", -1.0, 14.0),
               ("bottom right", 1.0, -14.0), ("bottom left", -1.0, -14.0))

Box = tuple[float, float, float, float]


def wrap_title(text: str, width_px: float = ASSUMED_WIDTH_PX, font_px: float = TITLE_FONT_PX) -> str:
    """``text`` broken with ``<br>`` at spaces so that no line is wider than ``width_px`` (about 0.55 em a char)."""
    per_line = max(20, int(width_px / (0.55 * font_px)))
    lines: list[str] = []
    for part in text.split("<br>"):
        line = ""
        for word in part.split(" "):
            if line and len(line) + 1 + len(word) > per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "<br>".join(lines)


def title_lines(fig: go.Figure) -> int:
    """How many lines the figure's title has (0 without one)."""
    text = fig.layout.title.text
    return 0 if not text else str(text).count("<br>") + 1


def top_margin_px(lines: int) -> int:
    """The top margin a title of ``lines`` lines needs to sit wholly below the toolbar."""
    return TOOLBAR_PX + max(1, lines) * TITLE_LINE_PX + max(0, lines - 1) * TITLE_LINE_PX // 2 + 12


def clear_toolbar(fig: go.Figure, width_px: float | None = None, text: str | None = None) -> go.Figure:
    """Wrap the title (or the new ``text``) to the figure's width and place it under the toolbar, with a top margin
    to match.

    The title is anchored by its top edge ``TOOLBAR_PX`` below the figure's top (container coordinates), so the mode
    bar that plotly draws in the top right corner never covers it. The figure's height must be set.
    """
    width = width_px or fig.layout.width or ASSUMED_WIDTH_PX
    raw = fig.layout.title.text if text is None else text
    wrapped = wrap_title(str(raw), float(width) - 40) if raw else raw
    lines = 0 if not wrapped else str(wrapped).count("<br>") + 1
    height = float(fig.layout.height or 450)
    # computed from the values here, not read back: a FigureWidget in batch_update returns the old values;
    # plotly lifts a title of n lines by about half a line per extra line, so its anchor moves down as much
    anchor_px = TOOLBAR_PX + max(0, lines - 1) * TITLE_LINE_PX / 2
    fig.update_layout(title={"text": wrapped, "yref": "container", "y": 1 - anchor_px / height, "yanchor": "top",
                             "x": 0.02, "xref": "container", "xanchor": "left", "font": {"size": TITLE_FONT_PX}},
                      margin={"t": max(int(fig.layout.margin.t or 0), top_margin_px(lines) + _subplot_titles_px(fig))})
    return fig


def _subplot_titles_px(fig: go.Figure) -> int:
    """Room the top row's subplot titles take above the plot area (they sit at the top of the paper)."""
    on_top = [a for a in fig.layout.annotations or () if a.yref == "paper" and a.y is not None and a.y >= 1 - 1e-9
              and a.yanchor == "bottom"]
    return TITLE_LINE_PX if on_top else 0


def set_title(fig: go.Figure, text: str) -> None:
    """Replace a live figure's title, keeping it clear of the toolbar (wrapped, top margin grown if need be)."""
    clear_toolbar(fig, text=text)


def title_clears_toolbar(fig: go.Figure) -> bool:
    """True when the figure's title (if any) lies wholly between the toolbar and the plot area."""
    lines = title_lines(fig)
    if not lines:
        return True
    t = fig.layout.title
    height = float(fig.layout.height or 450)
    anchor = (1 - float(t.y)) * height if t.yref == "container" and t.yanchor == "top" and t.y is not None else 0.0
    top_px = anchor - max(0, lines - 1) * TITLE_LINE_PX / 2  # where plotly draws the first line
    needed = anchor + lines * TITLE_LINE_PX + _subplot_titles_px(fig)
    return top_px >= TOOLBAR_PX - 0.5 and float(fig.layout.margin.t or 0) >= needed - 0.5


#: height of one row of a horizontal legend, and the room the x axis's ticks and title take under the plot
LEGEND_ROW_PX = 22
AXIS_TITLE_PX = 60


def legend_rows(fig: go.Figure, width_px: float | None = None, char_px: float = 6.0) -> int:
    """How many rows a horizontal legend of ``fig`` fills: plotly aligns its entries in columns as wide as the widest
    entry (~45 px + text)."""
    names = [str(t.name) for t in fig.data if t.showlegend is not False and t.name]
    if not names:
        return 0
    per_row = max(1, int((figure_size(fig, width_px)[0] - 20) // (45 + char_px * max(map(len, names)))))
    return -(-len(names) // per_row)


def legend_below(fig: go.Figure, width_px: float | None = None) -> go.Figure:
    """A horizontal legend in a bottom margin sized for it (so the plot area, and the labels placed on it, do not
    move when plotly lays the legend out, and the legend never scrolls)."""
    rows = legend_rows(fig, width_px)
    fig.update_layout(legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0,
                              "font": {"size": 11}},
                      margin={"b": AXIS_TITLE_PX + rows * LEGEND_ROW_PX + 10})
    return fig


def figure_size(fig: go.Figure, width_px: float | None = None) -> tuple[float, float]:
    """The figure's width and height in pixels (:data:`ASSUMED_WIDTH_PX` where the width is left to the page)."""
    return float(width_px or fig.layout.width or ASSUMED_WIDTH_PX), float(fig.layout.height or 450)


def dashboard_height_px(fig: go.Figure, control_rows: int) -> float:
    """What a dashboard needs on screen: its figure and ``control_rows`` rows of controls."""
    return figure_size(fig)[1] + control_rows * CONTROL_ROW_PX


def widget_figure_budget_px(control_rows: int) -> int:
    """The tallest figure that fits a 1280 × 800 JupyterLab window beside ``control_rows`` rows of controls."""
    return NOTEBOOK_VIEW_PX - control_rows * CONTROL_ROW_PX


def _overlaps(a: Box, b: Box) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def label_box(px: float, py: float, text: str, spot: str, char_px: float = 6.5, line_px: float = 14.0) -> Box:
    """The pixel box of ``text`` drawn at ``spot`` (one of :data:`LABEL_SPOTS`) of a point at (px, py), y up."""
    offsets = {pos: (dx, dy) for pos, dx, dy in LABEL_SPOTS}
    dx, dy = offsets[spot]
    w = char_px * len(text)
    cx, cy = px + dx * (w / 2 + 8), py + dy
    return (cx - w / 2, cy - line_px / 2, cx + w / 2, cy + line_px / 2)


def place_at_pixels(pixels: Sequence[tuple[float, float]], texts: Sequence[str], priority: Sequence[float],
                    char_px: float = 6.5, line_px: float = 14.0, obstacles: Sequence[Box] = (),
                    bounds: Box | None = None) -> list[str | None]:
    """Greedy label placement on pixel positions: highest ``priority`` first, each label tries the spots of
    :data:`LABEL_SPOTS` and takes the first that overlaps no marker, no ``obstacles`` box and no label placed before
    it, and lies inside ``bounds`` (the plot area) if given; a label that fits nowhere gets ``None``."""
    taken: list[Box] = [(x - 6, y - 6, x + 6, y + 6) for x, y in pixels] + list(obstacles)
    out: list[str | None] = [None] * len(pixels)
    for i in sorted(range(len(pixels)), key=lambda k: -priority[k]):
        for pos, _, _ in LABEL_SPOTS:
            box = label_box(pixels[i][0], pixels[i][1], texts[i], pos, char_px, line_px)
            inside = bounds is None or (box[0] >= bounds[0] and box[1] >= bounds[1] and box[2] <= bounds[2]
                                        and box[3] <= bounds[3])
            if inside and all(not _overlaps(box, t) for j, t in enumerate(taken) if j != i):  # not its own marker
                out[i] = pos
                taken.append(box)
                break
    return out


def _plot_area(fig: go.Figure, width_px: float | None) -> tuple[float, float, float, float]:
    """Left, bottom, width and height of the x/y plot area in pixels (y up from the figure's bottom)."""
    width, height = figure_size(fig, width_px)
    m = fig.layout.margin
    left, right = float(m.l if m.l is not None else 80), float(m.r if m.r is not None else 80)
    top, bottom = float(m.t if m.t is not None else 100), float(m.b if m.b is not None else 80)
    dom_x = fig.layout.xaxis.domain or (0.0, 1.0)
    dom_y = fig.layout.yaxis.domain or (0.0, 1.0)
    inner_w, inner_h = width - left - right, height - top - bottom
    return (left + dom_x[0] * inner_w, bottom + dom_y[0] * inner_h, (dom_x[1] - dom_x[0]) * inner_w,
            (dom_y[1] - dom_y[0]) * inner_h)


def _to_pixels(fig: go.Figure, x: float, y: float, width_px: float | None) -> tuple[float, float]:
    left, bottom, w, h = _plot_area(fig, width_px)
    xa, ya = fig.layout.xaxis, fig.layout.yaxis
    if xa.range is None or ya.range is None:
        raise ValueError("label placement needs explicit x and y axis ranges")
    xv = math.log10(max(x, 1e-12)) if xa.type == "log" else x
    x0, x1 = (float(v) for v in xa.range)
    y0, y1 = (float(v) for v in ya.range)
    return left + (xv - x0) / (x1 - x0) * w, bottom + (y - y0) / (y1 - y0) * h


def _labelled_traces(fig: go.Figure) -> list[Any]:
    """Single-point scatter traces on the main axes that carry a text label."""
    return [t for t in fig.data if t.type == "scatter" and t.text is not None and len(t.x or ()) == 1
            and (t.xaxis in (None, "x")) and t.text[0]]


def _obstacles(fig: go.Figure, labelled: Sequence[Any], width_px: float | None) -> list[Box]:
    """What a label must not cover besides the labelled markers: other traces' markers, every vertical error bar,
    horizontal lines (line-only traces that stay at one y, and ``add_hline`` shapes)."""
    left, _, w, _ = _plot_area(fig, width_px)
    boxes: list[Box] = []
    for t in fig.data:
        if t.type != "scatter" or t.xaxis not in (None, "x"):
            continue
        pts = [(float(x), float(y)) for x, y in zip(t.x or (), t.y or ()) if x is not None and y is not None]
        mode = t.mode or ""
        if "markers" in mode:  # a labelled marker counts too where it is bigger than the usual 12 px
            r = max(6.0, float(t.marker.size or 6) / 2 + 2) if isinstance(t.marker.size, (int, float)) else 6.0
            if t not in labelled or r > 6.0:
                boxes += [(px - r, py - r, px + r, py + r)
                          for px, py in (_to_pixels(fig, x, y, width_px) for x, y in pts)]
        err = t.error_y
        if err is not None and err.visible is not False and err.array is not None:
            for (x, y), e in zip(pts, err.array):
                px, lo = _to_pixels(fig, x, y - float(e), width_px)
                hi = _to_pixels(fig, x, y + float(e), width_px)[1]
                boxes.append((px - 3, lo, px + 3, hi))
        if mode == "lines" and len({y for _, y in pts}) == 1 and pts:
            _, py = _to_pixels(fig, pts[0][0], pts[0][1], width_px)
            boxes.append((left, py - 2, left + w, py + 2))
    for shape in fig.layout.shapes or ():
        if shape.y0 is not None and shape.y0 == shape.y1 and shape.xref == "x domain":
            _, py = _to_pixels(fig, 1.0, float(shape.y0), width_px)
            boxes.append((left, py - 2, left + w, py + 2))
    return boxes


def place_plotly_labels(fig: go.Figure, width_px: float | None = None, char_px: float = 6.5,
                        line_px: float = 14.0) -> go.Figure:
    """Give every single-point, text-carrying scatter trace of ``fig`` a label spot that collides with no other label
    and no marker (greedy, highest point first); a trace whose label fits nowhere is drawn as a marker alone and
    shows its name in the legend. ``fig`` needs explicit axis ranges and a height."""
    traces = _labelled_traces(fig)
    pixels = [_to_pixels(fig, float(t.x[0]), float(t.y[0]), width_px) for t in traces]
    left, bottom, w, h = _plot_area(fig, width_px)
    spots = place_at_pixels(pixels, [str(t.text[0]) for t in traces], [float(t.y[0]) for t in traces],
                            char_px, line_px, obstacles=_obstacles(fig, traces, width_px),
                            bounds=(left, bottom, left + w, bottom + h))
    for t, spot in zip(traces, spots):
        if spot is None:
            t.mode = "markers"
            t.showlegend = True  # its name is in the legend instead
        else:
            t.mode = "markers+text"
            t.textposition = spot
            t.textfont = {"size": 11}
    return fig


def plotly_label_boxes(fig: go.Figure, width_px: float | None = None, char_px: float = 6.5,
                       line_px: float = 14.0) -> list[Box]:
    """The pixel boxes of the point labels ``fig`` draws (traces in ``markers+text`` mode on the main axes)."""
    boxes = []
    for t in _labelled_traces(fig):
        if "text" not in (t.mode or ""):
            continue
        px, py = _to_pixels(fig, float(t.x[0]), float(t.y[0]), width_px)
        boxes.append(label_box(px, py, str(t.text[0]), t.textposition or "top center", char_px, line_px))
    return boxes


def overlapping_labels(boxes: Sequence[Box]) -> list[tuple[int, int]]:
    """Index pairs of label boxes that overlap."""
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if _overlaps(boxes[i], boxes[j])]


def label_points(fig: go.Figure, width_px: float | None = None) -> go.Figure:
    """Place the point labels, then put the legend (which gains the names of points left unlabelled) in a bottom
    margin of its own, growing the figure by as much: the plot area the labels were placed on stays as it was."""
    m = fig.layout.margin
    top, bottom = float(m.t or 0), float(m.b if m.b is not None else 80)
    plot_h = float(fig.layout.height or 450) - top - bottom
    place_plotly_labels(fig, width_px)
    legend_below(fig, width_px)
    fig.update_layout(height=int(top + plot_h + float(fig.layout.margin.b)))
    return clear_toolbar(fig)  # the title's anchor is a share of the height
