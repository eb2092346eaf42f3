"""The notebooks' dashboards, driven from code: moving a slider fires its ``observe`` callback and redraws.

These checks used to run inside the notebooks, on "probe" copies of the shown dashboards (moving a shown slider from
code races the page's echo of that move). Here each builder gets small inputs; the browser test
(``tests/test_browser.py``) moves the sliders of the shown dashboards in JupyterLab.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import labkit
from labkit import BlackBox
from labkit.core.losses import soften
from labkit.core.metrics import entropy
from labkit.synthesis.base import Snapshot
from labkit.teaching.widgets.boundaries import boundary_dashboard
from labkit.teaching.widgets.few_shot import mixup_explorer
from labkit.teaching.widgets.generative import interpolation_dashboard
from labkit.teaching.widgets.impressions import impression_evolution_dashboard, simplex_dashboard
from labkit.teaching.widgets.pseudo_samples import pseudo_sample_dashboard
from labkit.teaching.widgets.soft_labels import temperature_dashboard

CLASSES = [f"class {k}" for k in range(10)]


def _traces(figure, attr: str) -> list[list]:
    """One attribute (``y``, ``z``, ``a``) of every trace, as plain lists."""
    return [[list(v) if hasattr(v, "__len__") else v for v in getattr(t, attr)] for t in figure.data
            if hasattr(t, attr)]


def _snapshots(steps: tuple[int, ...] = (0, 5, 10)) -> list[Snapshot]:
    """Images that brighten step by step, two per class."""
    labels = torch.arange(10).repeat_interleave(2)
    return [Snapshot(step, torch.full((20, 1, 8, 8), step / max(steps)), labels) for step in steps]


def test_the_temperature_slider_flattens_the_soft_labels() -> None:
    """Notebook 01: the bars follow the slider, and a higher temperature gives flatter soft labels."""
    logits = torch.tensor([[6.0, 2.0, 0.0, -1.0] + [-2.0] * 6, [0.5, 4.0, 3.5] + [0.0] * 7])
    dash = temperature_dashboard(logits, CLASSES, ["a", "b"], tau=4.0)
    dash.slider.value = 1.0
    sharp = dash.redraw(1.0)
    assert torch.allclose(torch.tensor(dash.figure.data[0].y), sharp[0], atol=1e-6)
    before = _traces(dash.figure, "y")
    dash.slider.value = 12.0  # fires the observe callback, like a learner dragging the slider
    assert _traces(dash.figure, "y") != before, "moving the temperature slider must redraw the bars"
    assert (entropy(soften(logits, 12.0)) > entropy(sharp)).all()
    assert "entropy per image" in dash.readout.value


def _spirals():
    teacher = labkit.get_teacher("toy2d-spirals-3", progress=False)
    train = labkit.load_dataset("toy2d-spirals-3", "train", limit=300)
    box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=3)
    map_box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=3, name="map")
    return box, map_box, train


def test_the_boundary_playground_resoftens_for_free_and_searches_a_new_point() -> None:
    """Notebook 02: a new temperature redraws the bars without a query; a new point runs a new search."""
    box, map_box, train = _spirals()
    pool_y = box(train.x)
    dash = boundary_dashboard(box, train.x, pool_y, train.info.classes, region_box=map_box, point=(0.3, 0.6),
                              tau=5.0, resolution=20)
    at_default = dash.redraw()
    assert all(float(p.max()) < 0.95 for p in at_default.values()), "τ = 5 shows a soft label for every measure"
    queries = box.queries
    before = _traces(dash.bars, "y")
    dash.tau_slider.value = 3.0
    assert _traces(dash.bars, "y") != before, "the temperature slider must redraw the soft-label bars"
    assert box.queries == queries, "re-softening costs no queries"
    assert {t.type for t in dash.bars.data} == {"bar"}
    dash.x_slider.value = 0.70
    assert box.queries > queries, "a new point runs a new search"
    d = dash.distances
    finite = torch.isfinite(d["BD"])
    assert (d["MBD"][finite] <= d["BD"][finite]).all(), "MBD starts from BD and only accepts improvements"


def test_the_beta_slider_redraws_the_simplex() -> None:
    """Notebook 04: a small β concentrates the Dirichlet targets (lower entropy) and redraws the ternary plot."""
    similarity = torch.softmax(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)), 1)
    dash = simplex_dashboard(similarity, [0, 1, 2], CLASSES, samples_per_class=50, beta=0.3, seed=0)
    dash.slider.value = 1.0
    before = list(dash.figure.data[0].a)
    at_one = float(entropy(dash.redraw(1.0)).mean())
    dash.slider.value = 0.05
    assert list(dash.figure.data[0].a) != before
    assert float(entropy(dash.redraw()).mean()) < at_one
    with pytest.raises(ValueError, match="exactly 3"):
        simplex_dashboard(similarity, [0, 1], CLASSES)


@pytest.mark.parametrize("build", ["impressions", "pseudo-samples"])
def test_the_step_slider_shows_each_snapshot(build: str) -> None:
    """Notebooks 04 and 05: the step slider opens at the first snapshot; moving it to the last redraws the images."""
    snapshots = _snapshots()
    if build == "impressions":
        dash = impression_evolution_dashboard(snapshots, CLASSES)
        history = None
    else:
        history = [{"iteration": 6, "mean_distance": 0.25}]
        dash = pseudo_sample_dashboard(snapshots, CLASSES, history=history)
    assert dash.slider.value == 0
    first = _traces(dash.figure, "z")
    dash.slider.value = snapshots[-1].step  # what dragging the slider to the end does
    assert _traces(dash.figure, "z") != first, "the images should change between the first and the last snapshot"
    if history:
        dash.slider.value = 5
        assert "0.250" in dash.readout.value


def test_the_mixup_explorer_queries_once_per_pair() -> None:
    """Notebook 06: λ redraws the teacher's soft label; a λ outside FS-BBT's range says "dropped"; a new pair costs
    101 queries, once."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    box = BlackBox(model, access="score", input_shape=(1, 8, 8), num_classes=10)
    images = torch.rand(6, 1, 8, 8)
    explorer = mixup_explorer(box, images, CLASSES, n_pairs=3, seed=0)
    assert box.queries == explorer.queries == 101 and box.queries_by_phase == {"mixup explorer": 101}
    explorer.lam_slider.value = 0.5
    before = list(explorer.figure.data[1].y)
    explorer.lam_slider.value = 0.30
    assert list(explorer.figure.data[1].y) != before, "moving λ must redraw the teacher's soft label"
    assert "kept" in explorer.figure.layout.title.text
    explorer.lam_slider.value = 0.03
    assert "dropped" in explorer.figure.layout.title.text
    explorer.pair_slider.value = 1
    explorer.pair_slider.value = 0  # cached: no new queries
    assert box.queries == explorer.queries == 202
    decision = BlackBox(model, access="decision", input_shape=(1, 8, 8), num_classes=10)
    with pytest.raises(labkit.AccessDenied):
        mixup_explorer(decision, images, CLASSES)


def test_the_alpha_slider_walks_between_two_classes() -> None:
    """Notebook 07: moving α regenerates the image and relabels it, without a teacher in sight."""
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(10, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    dash = interpolation_dashboard(generator, CLASSES, classifier=classifier, first=1, second=3, alpha=0.0)
    before = _traces(dash.figure, "z")[0]
    dash.alpha.value = 0.5  # what moving the slider does: the observe callback redraws
    assert _traces(dash.figure, "z")[0] != before and "α = 0.50" in dash.figure.layout.title.text
    assert "between class 1 and class 3" in dash.figure.layout.title.text
