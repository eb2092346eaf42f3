"""Figures read cleanly (issue 18): labels do not collide, scales are honest, one quantity per axis."""
from __future__ import annotations

import torch

from labkit.teaching.plots import boundaries, pseudo_samples
from labkit.teaching.plots.generative import alignment_pictures
from labkit.teaching.plots.leaderboard import place_labels


def _boxes(points, spots, width=800.0, height=360.0, char=6.5, line=14.0):
    import math

    from labkit.teaching.plots.leaderboard import _LABEL_SPOTS

    lx = [math.log10(x) for x, _, _ in points]
    ys = [y for _, y, _ in points]
    xs_px = [(v - min(lx) + 0.4) / (max(lx) - min(lx) + 0.8) * width for v in lx]
    ys_px = [(v - min(ys) + 5.0) / (max(ys) - min(ys) + 10.0) * height for v in ys]
    offsets = {pos: (dx, dy) for pos, dx, dy in _LABEL_SPOTS}
    out = []
    for (_, _, text), px, py, spot in zip(points, xs_px, ys_px, spots):
        if spot is None:
            continue
        dx, dy = offsets[spot]
        w = char * len(text)
        cx, cy = px + dx * (w / 2 + 8), py + dy
        out.append((cx - w / 2, cy - line / 2, cx + w / 2, cy + line / 2))
    return out


def test_point_labels_never_overlap_and_crowded_ones_are_dropped() -> None:
    pts = [(50_000 * (1 + 0.01 * i), 55.0 + 0.5 * i, f"mekd-row-{i}") for i in range(8)] + [(1e6, 80.0, "far")]
    spots = place_labels(pts)
    assert spots[-1] == "top center"  # an isolated point keeps the default spot
    assert None in spots  # eight points within four accuracy points cannot all be labelled
    boxes = _boxes(pts, spots)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], "two labels overlap"


def test_zero_query_measures_are_lines_and_the_axis_is_not_zoomed_into_noise() -> None:
    fig = boundaries.accuracy_vs_queries({"SD": [(0, 0.76)], "BD": [(20, 0.7626), (60, 0.7592), (200, 0.7525)]},
                                         {"plain KD": 0.8197})
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert hi - lo >= 6.0
    marked = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(marked) == 1 and min(marked[0].get_xdata()) == 20  # SD is no point at a fake x = 1
    assert any("SD (0 queries)" == t.get_text() for t in ax.get_legend().get_texts())


def test_accuracy_bars_start_at_zero() -> None:
    fig = boundaries.accuracy_bars({"hard": 0.8369, "KD": 0.8197})
    assert fig.axes[0].get_xlim()[0] == 0.0


def test_soft_label_histograms_show_shares() -> None:
    p = torch.softmax(torch.randn(500, 10) * 8, dim=1)
    fig = boundaries.soft_label_distributions({"teacher": p, "BD": torch.softmax(torch.randn(500, 10) * 0.1, 1)})
    for ax in fig.axes:
        assert ax.get_ylim()[1] <= 1.0 and ax.get_ylabel() == "share of samples"


def test_pseudo_sample_soft_labels_use_one_axis_per_quantity() -> None:
    soft = torch.softmax(torch.randn(60, 10), 1)
    fig = pseudo_samples.soft_label_distributions(soft, soft.argmax(1), [str(i) for i in range(10)])
    hist_axes = [ax for ax in fig.axes if ax.patches]
    assert {ax.get_xlabel() for ax in hist_axes} == {"probability of the teacher's class", "entropy (nats)"}


def test_alignment_rows_share_the_image_scale() -> None:
    x = torch.rand(3, 1, 28, 28)
    fig = alignment_pictures(x, torch.zeros_like(x), torch.full_like(x, 0.001), ["a"] * 3, ["b"] * 3)
    assert all(im.get_clim() == (0.0, 1.0) for ax in fig.axes for im in ax.images)


def test_manifold_class_share_asks_once_for_every_class() -> None:
    from labkit.synthesis.cvae import build_cvae, manifold_class_share

    cvae = build_cvae((1, 28, 28), 10)
    calls = []

    def box(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        return torch.arange(images.shape[0]) // 16  # "files" every class's 16 images under that class

    share = manifold_class_share(cvae, box, 10, steps=4)
    assert calls == [160] and torch.allclose(share, torch.ones(10))


# ---------------------------------------------------------------------------------------------- issue 27: figures
CLASSES = [f"class {k}" for k in range(10)]


def _board():
    from labkit.studies.leaderboard import saved_leaderboard

    board = saved_leaderboard("fashion-mnist", "laptop")
    assert board is not None, "the committed laptop leaderboard ships with the lab"
    return board


def _plotly_figures() -> dict[str, object]:
    """One of every plotly figure the notebooks show, built from small inputs (and the committed leaderboard)."""
    from labkit.studies.paper_figures import newer_work
    from labkit.teaching.plots import ideal, impressions, leaderboard
    from labkit.teaching.plots.core import soft_label_bars
    from labkit.teaching.plots.generative import accuracy_comparison

    board = _board()
    probs = torch.softmax(torch.randn(4, 10), 1)
    axis, labels = boundaries.region_grid(lambda p: (p[:, 0] > 0.5).long(), 20)
    history = [{"round": r, "teacher_counts": [r + k for k in range(10)]} for r in range(3)]
    return {
        "08 accuracy against queries": leaderboard.accuracy_vs_queries(board),
        "08 accuracy by access": leaderboard.accuracy_by_access(board),
        "08 ladder": leaderboard.ladder_figure(board, "mekd"),
        "09 accuracy against queries": ideal.accuracy_vs_queries_figure(
            [(2000.0, 0.3), (20000.0, 0.6)], (20000.0, 0.6), board, newer_work("fashion-mnist")),
        "09 class balance": ideal.class_balance_figure(history, CLASSES),
        "07 accuracy comparison": accuracy_comparison({"mekd-soft": 0.851, "mekd-hard": 0.857}, teacher_acc=0.9084),
        "01 soft labels with images": soft_label_bars(probs, CLASSES, ["a", "b", "c", "d"],
                                                      images=torch.rand(4, 1, 28, 28)),
        "02 regions": boundaries.decision_region_figure(axis, labels, ["left", "right"]),
        "04 class similarity": impressions.class_similarity_heatmap(torch.rand(10, 10), CLASSES),
    }


def test_plotly_titles_clear_the_toolbar() -> None:
    """Every plotly title sits below plotly's toolbar (top right), with a top margin that holds all its lines."""
    import plotly.graph_objects as go

    from labkit.teaching.plots.layout import TOOLBAR_PX, title_clears_toolbar, title_lines

    figures = _plotly_figures()
    for name, fig in figures.items():
        assert title_clears_toolbar(fig), f"{name}: the title runs under the toolbar"
        assert fig.layout.margin.t >= TOOLBAR_PX + 20 * title_lines(fig), name
    # control: plotly's own placement (title in the middle of a 40 px top margin) is under the toolbar
    assert not title_clears_toolbar(go.Figure(layout={"title": "a title", "height": 400, "margin": {"t": 40}}))


def test_live_titles_stay_clear_of_the_toolbar_after_a_redraw() -> None:
    from labkit.synthesis.base import Snapshot
    from labkit.teaching.plots.layout import title_clears_toolbar
    from labkit.teaching.widgets.pseudo_samples import pseudo_sample_dashboard

    labels = torch.arange(10).repeat_interleave(12)
    snaps = [Snapshot(s, torch.rand(120, 1, 28, 28), labels) for s in (0, 5)]
    dash = pseudo_sample_dashboard(snaps, CLASSES, caption=lambda r: f"round {r}: " + "a long caption " * 6)
    dash.slider.value = 5
    assert "<br>" in dash.figure.layout.title.text and title_clears_toolbar(dash.figure)


def test_plotly_point_labels_never_collide() -> None:
    """The leaderboard's and notebook 09's point labels: no two label boxes overlap (control: all on top)."""
    from labkit.teaching.plots.layout import overlapping_labels, plotly_label_boxes

    figures = _plotly_figures()
    for name, at_least in (("08 accuracy against queries", 12), ("09 accuracy against queries", 3)):
        fig = figures[name]
        boxes = plotly_label_boxes(fig)
        assert len(boxes) >= at_least, f"{name}: most points should carry their name"
        assert overlapping_labels(boxes) == [], f"{name}: two labels overlap"
    fig = figures["08 accuracy against queries"]
    hidden = [t for t in fig.data if t.text is not None and t.mode == "markers"]
    assert all(t.showlegend for t in hidden), "a point without its label keeps its name in the legend"
    for t in fig.data:  # control: every label above its point, as before placement
        if t.text is not None and len(t.x or ()) == 1:
            t.mode, t.textposition = "markers+text", "top center"
    assert overlapping_labels(plotly_label_boxes(fig)), "the 52k-query cluster overlaps when nothing is placed"


def test_the_legend_and_front_read_without_scrolling() -> None:
    from labkit.teaching.plots.layout import AXIS_TITLE_PX, LEGEND_ROW_PX, legend_rows

    fig = _plotly_figures()["08 accuracy against queries"]
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0, "the legend sits under the plot"
    assert fig.layout.margin.b >= AXIS_TITLE_PX + legend_rows(fig) * LEGEND_ROW_PX, "in a margin that holds it all"
    # 28 rows: the points whose label cannot be placed keep their name here; the margin check above holds them all
    assert sum(bool(t.showlegend is not False) for t in fig.data) <= 18
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert front.line.width >= 3 and front.line.dash in (None, "solid")
    assert fig.data.index(front) == 0, "the front is drawn under the markers"


def test_reported_points_without_a_budget_sit_in_a_margin_strip() -> None:
    import plotly.graph_objects as go

    from labkit.teaching.plots.ideal import points_without_budget_on_query_axis

    fig = _plotly_figures()["09 accuracy against queries"]
    strip = [t for t in fig.data if "queries not given" in (t.name or "")]
    assert strip and points_without_budget_on_query_axis(fig) == []
    assert all(t.xaxis == "x2" for t in strip)
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0], "the strip lies outside the query axis"
    star = next(t for t in fig.data if t.name == "IDEAL student (this run)")
    assert star.marker.symbol == "star-open" and fig.data.index(star) == 0, "the star never hides a committed marker"
    # control: the old drawing, at a made-up budget on the query axis
    fig.add_trace(go.Scatter(x=[20000], y=[83.9], name="ideal (reported, queries not given)"))
    assert points_without_budget_on_query_axis(fig) == ["ideal (reported, queries not given)"]


def test_widget_figures_fit_a_1280_by_800_window_with_their_controls() -> None:
    """Each dashboard's figure and its controls fit the notebook's view in a 1280 × 800 JupyterLab window."""
    import plotly.graph_objects as go
    from torch import nn

    from labkit import BlackBox
    from labkit.synthesis.base import Snapshot
    from labkit.teaching.plots.layout import NOTEBOOK_VIEW_PX, dashboard_height_px
    from labkit.teaching.widgets.few_shot import mixup_explorer
    from labkit.teaching.widgets.generative import interpolation_dashboard
    from labkit.teaching.widgets.impressions import impression_evolution_dashboard
    from labkit.teaching.widgets.pseudo_samples import pseudo_sample_dashboard
    from labkit.teaching.widgets.soft_labels import temperature_dashboard

    torch.manual_seed(0)
    fashion = [Snapshot(s, torch.rand(10 * n, 1, 28, 28), torch.arange(10).repeat_interleave(n))
               for s, n in ((0, 20), (1, 20))]
    rounds = [Snapshot(s, torch.rand(500, 1, 28, 28), torch.arange(10).repeat_interleave(50)) for s in (0, 1)]
    box = BlackBox(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), access="score", input_shape=(1, 28, 28),
                   num_classes=10)
    generator = nn.Sequential(nn.Linear(10, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    dashboards = {  # figure, rows of controls on screen with it
        "01 temperature": (temperature_dashboard(torch.randn(4, 10), CLASSES, list("abcd"),
                                                 images=torch.rand(4, 1, 28, 28)).figure, 2),
        "04 evolution": (impression_evolution_dashboard([Snapshot(s, torch.rand(10, 1, 28, 28), torch.arange(10))
                                                         for s in (0, 1)], CLASSES).figure, 2),
        "05 pseudo-samples": (pseudo_sample_dashboard(fashion, CLASSES).figure, 2),
        "09 rounds": (pseudo_sample_dashboard(rounds, CLASSES, step_name="round").figure, 2),
        "06 mixup": (mixup_explorer(box, torch.rand(6, 1, 28, 28), CLASSES, n_pairs=2).figure, 3),
        "07 interpolation": (interpolation_dashboard(generator, CLASSES).figure, 2),
    }
    for name, (fig, rows) in dashboards.items():
        assert dashboard_height_px(fig, rows) <= NOTEBOOK_VIEW_PX, f"{name}: slider and figure never both on screen"
    rounds_fig = dashboards["09 rounds"][0]
    assert rounds_fig.layout.width >= 600, "the round mosaic keeps a legible width"
    few = [Snapshot(s, torch.rand(20, 1, 28, 28), torch.arange(10).repeat_interleave(2)) for s in (0, 1)]
    assert pseudo_sample_dashboard(few, CLASSES).figure.layout.width >= 560, "one row for the toolbar and the title"
    # control: the old sizing (a 6-pixel-per-pixel mosaic capped at 820 px) does not fit
    assert dashboard_height_px(go.Figure(layout={"height": 820}), 2) > NOTEBOOK_VIEW_PX


def test_the_temperature_label_is_not_cut_and_the_images_are_shown() -> None:
    from labkit.teaching.widgets.soft_labels import temperature_dashboard

    images = torch.rand(2, 1, 28, 28)
    dash = temperature_dashboard(torch.randn(2, 10), CLASSES, ["a", "b"], images=images)
    assert dash.slider.style.description_width == "initial"
    heat = [t for t in dash.figure.data if t.type == "heatmap"]
    assert len(heat) == 2 and torch.allclose(torch.tensor(heat[0].z).flip(0), images[0, 0], atol=1e-6)
    probs = dash.redraw(2.0)
    bars = [t for t in dash.figure.data if t.type == "bar"]
    assert torch.allclose(torch.tensor(bars[1].y), probs[1], atol=1e-6)


def test_equal_soft_label_sets_are_drawn_side_by_side_and_named() -> None:
    p = torch.softmax(torch.randn(200, 10) * 2, 1)
    fig = boundaries.soft_label_distributions({"BD": p, "SD": p.clone()})
    ax = fig.axes[0]
    bd, sd = ax.containers[0], ax.containers[1]
    tall = max(range(len(bd.patches)), key=lambda i: bd.patches[i].get_height())
    assert bd.patches[tall].get_height() == sd.patches[tall].get_height() > 0
    assert bd.patches[tall].get_x() != sd.patches[tall].get_x(), "equal bars stand side by side, not on top"
    assert any("BD and SD give the same soft labels" in t.get_text() for t in fig.texts)
    # control: different sets get no such note
    other = boundaries.soft_label_distributions({"BD": p, "SD": torch.softmax(torch.randn(200, 10), 1)})
    assert not any("same soft labels" in t.get_text() for t in other.texts)


def test_an_accuracy_equal_to_a_line_is_named() -> None:
    fig = boundaries.accuracy_vs_queries({"SD": [(0, 0.7635)], "BD": [(20, 0.7635), (60, 0.77)]}, {"KD": 0.82})
    assert any("BD at 20 queries = SD (0 queries): both 76.35%" in t.get_text() for t in fig.texts)
    fig = boundaries.accuracy_vs_queries({"SD": [(0, 0.75)], "BD": [(20, 0.7635)]}, {"KD": 0.82})  # control
    assert not fig.texts


def test_bar_values_stay_clear_of_the_teacher_line_and_the_title_says_what_was_tested() -> None:
    fig = _plotly_figures()["07 accuracy comparison"]
    bar = fig.data[0]
    assert bar.textposition == "inside" and bar.insidetextanchor == "start", "values sit at the bars' feet"
    title = fig.layout.title.text
    assert "full test set" in title and not title.startswith("Test accuracy on the same")


def test_two_students_alignment_figures_have_different_titles() -> None:
    x = torch.rand(3, 1, 28, 28)
    a = alignment_pictures(x, x, torch.zeros_like(x), ["a"] * 3, ["b"] * 3, title="untrained student")
    b = alignment_pictures(x, x, x.clone(), ["a"] * 3, ["a"] * 3)
    assert a._suptitle.get_text() == "untrained student"
    assert a._suptitle.get_text() != b._suptitle.get_text() and "mean L1 0.000" in b._suptitle.get_text()


def test_the_leaderboard_table_is_one_line_a_row() -> None:
    """Notebook 08's table: one short line per measured row (the Markdown report runs to thousands of pixels)."""
    from labkit.teaching.plots.leaderboard import leaderboard_table

    board = _board()
    html = leaderboard_table(board)
    assert html.count("<tr>") == len(board.measured()) + 1 and "<br" not in html
    assert len(html) < len(board.to_markdown()) / 2  # control: the full report is far longer


def test_the_distance_legend_sits_under_the_axes() -> None:
    """Notebook 05: inside the axes the legend covered the end of the median line."""
    history = [{"iteration": i, "mean_distance": 2.9 + 0.2 * i, "median_distance": 2.7 - 0.25 * i, "moved": 0.97}
               for i in (1, 2, 3)]
    fig = pseudo_samples.distance_curve(history)
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.y1 <= fig.axes[0].get_window_extent().y0, "the legend lies below the plot, over no data"


def test_bar_values_never_sit_on_their_error_bars() -> None:
    """Notebook 08's bars by access: a value sits under its error bar, or (on a short bar) above it."""
    board = _board()
    fig = _plotly_figures()["08 accuracy by access"]
    by_key = {e.key: e for e in board.measured()}
    for t in fig.data:
        keys = list(t.x[1]) if t.x is not None and len(t.x) == 2 else []
        for key, y, text in zip(keys, t.y, t.text or [""] * len(keys)):
            e = by_key[key]
            mean, std = 100 * e.student_acc.mean, 100 * (e.student_acc.std or 0.0)
            if t.type == "bar" and text:
                assert t.insidetextanchor == "start" and mean - std >= 15.0, f"{key}: its value meets its error bar"
            if t.type == "scatter" and t.mode == "text":
                assert y > mean + std, f"{key}: the value above the bar clears its error bar"
    # a short bar (as zsdb3kd-paper's was before issue 29): its value goes above the bar, clear of its error bar
    import copy

    from labkit.studies.board_stats import Stat
    from labkit.teaching.plots import leaderboard

    short = copy.deepcopy(board)
    short.entry("zsdb3kd-paper").student_acc = Stat.of([0.2166, 0.1128, 0.2561])
    low = leaderboard.accuracy_by_access(short)
    above = [t for t in low.data if t.type == "scatter" and t.mode == "text" and "zsdb3kd-paper" in t.x[1]]
    assert above and all(y > 19.52 + 7.40 for t in above for k, y in zip(t.x[1], t.y) if k == "zsdb3kd-paper")
