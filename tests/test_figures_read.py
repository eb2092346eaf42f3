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
