"""Notebook 02: the 2-D decision-boundary playground.

Pick a point (two sliders, or click the map), and the dashboard searches the
teacher's boundaries from it through a decision-only box with SD, BD and MBD,
draws the search rays and the boundary points found, lists the distances and
queries, and shows the three soft labels side by side. The ``temperature``
slider only re-softens the labels (no queries).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from labkit.core.blackbox import BlackBox
from labkit.synthesis import boundary
from labkit.teaching.plots.boundaries import (
    MEASURE_COLORS,
    decision_region_figure,
    distance_table_html,
    region_grid,
    soft_label_comparison,
)
from labkit.teaching.plots.layout import set_title
from labkit.teaching.widgets import FULL_LABEL

MEASURE_NAMES = ("SD", "BD", "MBD")


@dataclass
class BoundarySearchSettings:
    """How hard the playground searches (per (point, class) pair)."""

    n_directions: int = 8           # BD rays toward the nearest class-t samples
    mbd_directions: int = 8         # MBD starts from BD with this many rays (same as BD: then MBD ≤ BD)...
    signopt_queries: int = 150      # ...and spends this many Sign-OPT queries per pair on top
    n_probes: int = 10
    sd_samples: int = 20
    seed: int = 0


def _segments(start: torch.Tensor, ends: torch.Tensor) -> tuple[list[float | None], list[float | None]]:
    """x and y lists for many segments start→end in one scatter trace (None separates them)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for e in ends.tolist():
        xs += [float(start[0]), e[0], None]
        ys += [float(start[1]), e[1], None]
    return xs, ys


@dataclass
class BoundaryDashboard:
    """Widgets, live figures and the search results of the playground."""

    box: BlackBox
    pool_x: torch.Tensor
    pool_y: torch.Tensor
    class_names: Sequence[str]
    settings: BoundarySearchSettings
    x_slider: widgets.FloatSlider
    y_slider: widgets.FloatSlider
    tau_slider: widgets.FloatSlider
    regions: go.FigureWidget
    bars: go.FigureWidget
    table: widgets.HTML
    widget: widgets.Box
    overlay: dict[str, int] = field(default_factory=dict)  # trace name -> index in ``regions``
    distances: dict[str, torch.Tensor] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)
    teacher_label: int = -1
    busy: bool = False

    # -------------------------------------------------------------------------------- searching
    def search(self, x: float | None = None, y: float | None = None) -> dict[str, torch.Tensor]:
        """Search SD, BD and MBD from the point ``(x, y)`` (default: the sliders), redraw; return distances."""
        pt = torch.tensor([[float(self.x_slider.value if x is None else x),
                            float(self.y_slider.value if y is None else y)]])
        s, c = self.settings, len(self.class_names)
        with self.box.phase("label"):
            y0 = self.box(pt)
        sd = boundary.sample_distance(pt, self.pool_x, self.pool_y, c, s.sd_samples, seed=s.seed)
        with self.box.phase("BD"):
            bd = boundary.boundary_distance(self.box, pt, y0, self.pool_x, self.pool_y, c, s.n_directions,
                                            keep_directions=True, seed=s.seed)
        with self.box.phase("MBD"):
            mbd = boundary.minimal_boundary_distance(self.box, pt, y0, self.pool_x, self.pool_y, c, s.mbd_directions,
                                                     signopt_queries_per_pair=s.signopt_queries,
                                                     n_probes=s.n_probes, keep_directions=True, seed=s.seed)
        own = torch.nn.functional.one_hot(y0, c).bool()
        sd_d = torch.where(own, torch.full_like(sd.distance, float("inf")), sd.distance)
        self.teacher_label = int(y0)
        self.distances = {"SD": sd_d[0], "BD": bd.distance[0], "MBD": mbd.distance[0]}
        self.queries = {"SD": 0, "BD": bd.total_queries, "MBD": mbd.total_queries}
        self._draw_search(pt[0], y0, bd, mbd)
        self.redraw()
        return self.distances

    def _draw_search(self, pt: torch.Tensor, y0: torch.Tensor, bd: boundary.BoundaryDistances,
                     mbd: boundary.BoundaryDistances) -> None:
        c = len(self.class_names)
        idx, _ = boundary.class_candidates(pt.unsqueeze(0), self.pool_x, self.pool_y, c, self.settings.n_directions)
        cand = idx[0][torch.arange(c) != int(y0)].reshape(-1)
        rays = self.pool_x[cand[cand >= 0]]
        sd_idx, _ = boundary.class_candidates(pt.unsqueeze(0), self.pool_x, self.pool_y, c, 1)
        sd_pts = self.pool_x[sd_idx[0, torch.arange(c) != int(y0), 0].clamp_min(0)]
        found_bd = bd.boundary_points(pt.unsqueeze(0))[0][torch.isfinite(bd.distance[0])]
        found_mbd = mbd.boundary_points(pt.unsqueeze(0))[0][torch.isfinite(mbd.distance[0])]
        with self.regions.batch_update():
            tr = self.regions.data
            tr[self.overlay["point"]].x, tr[self.overlay["point"]].y = [float(pt[0])], [float(pt[1])]
            for name, ends in (("rays", rays), ("SD", sd_pts), ("BD", found_bd), ("MBD", found_mbd)):
                xs, ys = _segments(pt, ends)
                tr[self.overlay[name]].x, tr[self.overlay[name]].y = xs, ys

    # -------------------------------------------------------------------------------- soft labels
    def redraw(self, tau: float | None = None) -> dict[str, torch.Tensor]:
        """Soft labels of the last search at temperature ``tau`` (default: the slider); no queries."""
        tau = float(self.tau_slider.value if tau is None else tau)
        c = len(self.class_names)
        y0 = torch.tensor([self.teacher_label])
        soft = {m: boundary.distance_soft_labels(d.view(1, c), y0, tau)[0] for m, d in self.distances.items()}
        with self.bars.batch_update():
            for trace in self.bars.data:
                trace.y = soft[trace.name].tolist()
            said = self.class_names[self.teacher_label]
            set_title(self.bars, f"Soft labels at temperature τ = {tau:g} (teacher says {said})")
        by_phase = ", ".join(f"{'this notebook' if phase == 'default' else phase}: {n:,}"
                             for phase, n in self.box.queries_by_phase.items())
        self.table.value = distance_table_html(self.distances, self.queries, self.class_names) + \
            f"<p>queries through the box so far: {self.box.queries:,} ({by_phase})</p>"
        return soft

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.widget)


def boundary_dashboard(box: BlackBox, pool_x: torch.Tensor, pool_y: torch.Tensor, class_names: Sequence[str],
                       region_box: BlackBox | None = None, point: tuple[float, float] = (0.5, 0.5),
                       tau: float = 5.0, settings: BoundarySearchSettings | None = None,
                       resolution: int = 120) -> BoundaryDashboard:
    """Build the playground on a decision ``box`` over 2-D points in [0, 1]².

    ``pool_x``/``pool_y`` are labelled points (the *teacher's* labels, so BD's far ends hit) used
    by SD and BD. ``region_box`` (default: ``box``) answers the ``resolution²`` queries that draw
    the regions; give a separate box to keep the search's query count clean.
    """
    settings = settings or BoundarySearchSettings()
    axis, labels = region_grid(region_box or box, resolution)
    regions = decision_region_figure(axis, labels, class_names, pool_x, pool_y, widget=True,
                                     title="Teacher regions: pick a point (sliders or click)")
    overlay = {}
    styles = {
        "rays": dict(mode="lines", line=dict(color="rgba(0,0,0,0.18)", width=1), name="BD search rays"),
        "SD": dict(mode="lines+markers", line=dict(color=MEASURE_COLORS["SD"], dash="dot"), name="SD: nearest sample"),
        "BD": dict(mode="lines+markers", line=dict(color=MEASURE_COLORS["BD"], width=2), name="BD boundary points"),
        "MBD": dict(mode="lines+markers", line=dict(color=MEASURE_COLORS["MBD"], width=2, dash="dash"),
                    name="MBD boundary points"),
        "point": dict(mode="markers", marker=dict(size=13, color="black", symbol="x"), name="your point"),
    }
    for name, style in styles.items():
        overlay[name] = len(regions.data)
        regions.add_trace(go.Scatter(x=[], y=[], **style))
    empty = torch.zeros(len(class_names))
    bars = soft_label_comparison({m: empty for m in MEASURE_NAMES}, class_names, widget=True)
    mk = dict(min=0.0, max=1.0, step=0.01, continuous_update=False, readout_format=".2f")
    x_slider = widgets.FloatSlider(value=point[0], description="x", **mk)
    y_slider = widgets.FloatSlider(value=point[1], description="y", **mk)
    tau_slider = widgets.FloatSlider(value=tau, min=0.05, max=20.0, step=0.05, description="temperature",
                                     continuous_update=True, readout_format=".2f", style=FULL_LABEL)
    table = widgets.HTML()
    # the right column wraps below the map where the page is narrow (1280 px with JupyterLab's file browser open)
    layout = widgets.VBox([widgets.HBox([x_slider, y_slider]),
                           widgets.HBox([regions, widgets.VBox([tau_slider, bars, table])],
                                        layout=widgets.Layout(flex_flow="row wrap"))])
    dash = BoundaryDashboard(box, pool_x, pool_y, class_names, settings, x_slider, y_slider, tau_slider, regions,
                             bars, table, layout, overlay)
    x_slider.observe(lambda ch: None if dash.busy else dash.search(), names="value")
    y_slider.observe(lambda ch: None if dash.busy else dash.search(), names="value")
    tau_slider.observe(lambda ch: dash.redraw(ch["new"]), names="value")

    def on_click(trace: object, points: object, state: object) -> None:
        xs, ys = getattr(points, "xs", []), getattr(points, "ys", [])
        if xs:
            dash.busy = True  # one search for both coordinates, not two
            x_slider.value, y_slider.value = float(xs[0]), float(ys[0])
            dash.busy = False
            dash.search()

    for trace in regions.data[:min(overlay.values())]:  # the regions and the pool points, not the search overlays
        try:
            trace.on_click(on_click)
        except Exception:  # noqa: BLE001 - clicking is a convenience; sliders always work
            pass
    dash.search()
    return dash
