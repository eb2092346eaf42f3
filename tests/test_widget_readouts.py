"""Dashboards print readable readouts (notebook 02's used to print a raw dict with 'default': 97538)."""
from __future__ import annotations

import labkit
from labkit import BlackBox
from labkit.teaching.widgets.boundaries import boundary_dashboard


def test_boundary_dashboard_names_its_query_phases() -> None:
    teacher = labkit.get_teacher("toy2d-spirals-3", progress=False)
    train = labkit.load_dataset("toy2d-spirals-3", "train", limit=300)
    classes = train.info.classes
    box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=len(classes))
    map_box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=len(classes), name="map")
    pool_y = box(train.x)  # counted under the box's default phase
    dash = boundary_dashboard(box, train.x, pool_y, classes, region_box=map_box, point=(0.3, 0.6), tau=1.0,
                              resolution=20)
    text = dash.table.value
    assert "{" not in text and "'default'" not in text
    assert f"this notebook: {len(train.x):,}" in text and f"{box.queries:,}" in text


def test_clicking_the_map_moves_the_point_and_searches() -> None:
    from plotly.callbacks import InputDeviceState, Points

    teacher = labkit.get_teacher("toy2d-spirals-3", progress=False)
    train = labkit.load_dataset("toy2d-spirals-3", "train", limit=300)
    box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=3)
    dash = boundary_dashboard(box, train.x, box(train.x), train.info.classes, point=(0.3, 0.6), resolution=20)
    regions = dash.regions.data[0]
    assert regions.hoverinfo == "none" and regions._click_callbacks  # "skip" would swallow the click
    before = box.queries
    regions._dispatch_on_click(Points(point_inds=[0], xs=[0.72], ys=[0.25], trace_name="regions", trace_index=0),
                               InputDeviceState())
    assert (dash.x_slider.value, dash.y_slider.value) == (0.72, 0.25)
    assert box.queries > before and abs(dash.regions.data[dash.overlay["point"]].x[0] - 0.72) < 1e-6


def test_the_playground_wraps_on_a_narrow_page() -> None:
    teacher = labkit.get_teacher("toy2d-spirals-3", progress=False)
    train = labkit.load_dataset("toy2d-spirals-3", "train", limit=200)
    box = BlackBox(teacher.model, access="decision", input_shape=(2,), num_classes=3)
    dash = boundary_dashboard(box, train.x, box(train.x), train.info.classes, resolution=10)
    row = dash.widget.children[1]  # the map and the right column (temperature, bars, table)
    assert row.layout.flex_flow == "row wrap" and len(row.children) == 2
    assert dash.tau_slider.value == 5.0 and dash.tau_slider.max >= 20  # a default temperature that shows soft labels
