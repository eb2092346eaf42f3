"""Notebook 05: a slider over ZSDB3KD iterations that redraws the pseudo-samples of every class."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from labkit.synthesis.base import Snapshot
from labkit.teaching.plots.layout import clear_toolbar, set_title, top_margin_px, widget_figure_budget_px
from labkit.teaching.plots.pseudo_samples import snapshot_mosaic
from labkit.teaching.widgets import FULL_LABEL

#: images per class row at most, by default (more would shrink each image below legibility)
MAX_PER_ROW = 16
#: widest the mosaic figure gets (a notebook's output area in a 1280 px window)
MAX_WIDTH_PX = 860
#: narrowest the mosaic figure gets (a narrower one wraps plotly's toolbar onto two rows)
MIN_WIDTH_PX = 560
#: rows of controls beside the figure: the slider and the readout
CONTROL_ROWS = 2


@dataclass
class PseudoSampleDashboard:
    """The iteration slider, the live mosaic (a row per class) and :meth:`redraw` (the slider's callback)."""

    slider: widgets.SelectionSlider
    figure: go.FigureWidget
    readout: widgets.HTML
    box: widgets.VBox
    mosaics: dict[int, torch.Tensor]
    distances: dict[int, float]
    caption: Callable[[int], str] | None = None

    def redraw(self, iteration: int | None = None) -> torch.Tensor:
        """Show the snapshot taken after ``iteration`` (default: the slider's), return its mosaic."""
        step = int(self.slider.value if iteration is None else iteration)
        mosaic = self.mosaics[step]
        with self.figure.batch_update():
            self.figure.data[0].z = mosaic.flip(0).tolist()
            set_title(self.figure, self.caption(step) if self.caption is not None else (
                "noise start (iteration 0)" if step == 0 else f"after {step} iteration(s) of search-and-step"))
        dist = self.distances.get(step)
        self.readout.value = f"mean distance to the nearest boundary: {dist:.3f}" if dist is not None else ""
        return mosaic

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def pseudo_sample_dashboard(snapshots: Sequence[Snapshot], class_names: Sequence[str], per_class: int | None = None,
                            history: Sequence[Mapping[str, float]] | None = None, *, step_name: str = "iteration",
                            caption: Callable[[int], str] | None = None) -> PseudoSampleDashboard:
    """Build the dashboard: moving the ``iteration`` slider calls :meth:`PseudoSampleDashboard.redraw`.

    ``history`` (the synthesizer's per-iteration rows) adds the mean boundary distance measured at
    that iteration to the readout (iteration ``i``'s distance is measured before its step). ``step_name`` and
    ``caption(step)`` relabel the slider and the title for other step-wise syntheses (IDEAL's rounds).
    ``per_class`` defaults to every image of the fullest class, at most :data:`MAX_PER_ROW`. The figure is sized so
    that it, the slider and the readout fit a 1280 × 800 JupyterLab window together.
    """
    c = len(class_names)
    if per_class is None:
        per_class = min(MAX_PER_ROW, max((int((s.labels == k).sum()) if s.labels is not None else s.images.shape[0])
                                         for s in snapshots for k in range(c)))
    mosaics = {s.step: snapshot_mosaic(s, c, per_class) for s in snapshots}
    steps = sorted(mosaics)
    distances: dict[int, float] = {}
    for row in history or []:
        distances[int(row["iteration"]) - 1] = float(row["mean_distance"])  # measured on the images after step i-1
    first = mosaics[steps[0]]
    h, w = first.shape
    rows = h / c
    fig = go.FigureWidget(go.Heatmap(z=first.flip(0).tolist(), colorscale="gray", zmin=0, zmax=1, showscale=False))
    top = top_margin_px(2)  # room for a caption of two lines
    scale = min(6.0, (MAX_WIDTH_PX - 120) / w, (widget_figure_budget_px(CONTROL_ROWS) - top - 10) / h)
    # at least MIN_WIDTH_PX wide, so the title and the toolbar each keep one row (the mosaic keeps its aspect)
    fig.update_layout(width=max(MIN_WIDTH_PX, int(120 + scale * w)), height=int(top + 10 + scale * h),
                      margin={"t": top, "l": 110, "r": 10, "b": 10}, title="noise start (iteration 0)")
    clear_toolbar(fig)
    fig.update_xaxes(visible=False, constrain="domain")  # a narrow mosaic shrinks its axis, not into a wide box
    fig.update_layout(plot_bgcolor="white")
    fig.update_yaxes(tickvals=[h - rows * (k + 0.5) for k in range(c)], ticktext=list(class_names),
                     scaleanchor="x", constrain="domain")
    slider = widgets.SelectionSlider(options=steps, value=steps[0], description=step_name, style=FULL_LABEL,
                                     continuous_update=True, layout=widgets.Layout(width="480px"))
    readout = widgets.HTML()
    dash = PseudoSampleDashboard(slider, fig, readout, widgets.VBox([slider, fig, readout]), mosaics, distances,
                                 caption)
    slider.observe(lambda change: dash.redraw(change["new"]), names="value")
    dash.redraw(steps[0])
    return dash
