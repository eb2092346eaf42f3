"""Notebook 07: walk between two class vectors and watch the generator's image and a classifier's answer."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from labkit.synthesis.generators import one_hot_responses
from labkit.teaching.plots.layout import clear_toolbar, set_title


@dataclass
class InterpolationDashboard:
    """Two class pickers and an α slider; :meth:`redraw` is what their callbacks call."""

    first: widgets.Dropdown
    second: widgets.Dropdown
    alpha: widgets.FloatSlider
    figure: go.FigureWidget
    box: widgets.VBox
    generator: nn.Module
    classifier: nn.Module | None
    scale: float

    def redraw(self, *_: object) -> torch.Tensor:
        """Generate G((1−α)·s·e_a + α·s·e_b), redraw the image and the classifier's probabilities; return the image."""
        k = len(self.first.options)
        ends = one_hot_responses([self.first.index, self.second.index], k, self.scale)
        a = float(self.alpha.value)
        z = (1 - a) * ends[0] + a * ends[1]
        device = next(self.generator.parameters()).device
        was = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            img = self.generator(z.unsqueeze(0).to(device)).float()
            probs = torch.softmax(self.classifier.eval()(img).float(), 1)[0].cpu() if self.classifier is not None \
                else torch.zeros(k)
        self.generator.train(was)
        img = img.cpu()
        with self.figure.batch_update():
            self.figure.data[0].z = img[0, 0].flip(0).tolist()
            self.figure.data[1].y = probs.tolist()
            set_title(self.figure, f"α = {a:.2f} between {self.first.value} and {self.second.value}"
                      + (f": classifier says {self.first.options[int(probs.argmax())]} "
                         f"({float(probs.max()):.2f})" if self.classifier is not None else ""))
        return img

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def interpolation_dashboard(generator: nn.Module, class_names: Sequence[str], classifier: nn.Module | None = None,
                            first: int = 0, second: int = 1, scale: float = 3.0,
                            alpha: float = 0.0) -> InterpolationDashboard:
    """Build the dashboard: ``classifier`` (e.g. the distilled student) labels each generated image for free.

    It never queries the teacher, so moving the slider costs no queries. ``alpha`` is where the slider starts.
    """
    names = list(class_names)
    d1 = widgets.Dropdown(options=names, index=first, description="from")
    d2 = widgets.Dropdown(options=names, index=second, description="to")
    alpha_slider = widgets.FloatSlider(value=float(alpha), min=0.0, max=1.0, step=0.05, description="α",
                                       continuous_update=True, layout=widgets.Layout(width="420px"))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], subplot_titles=("G(z)", "classifier's probabilities"))
    fig.add_trace(go.Heatmap(z=[[0.0]], colorscale="gray", zmin=0, zmax=1, showscale=False), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[0.0] * len(names), marker_color="#4c72b0"), row=1, col=2)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_yaxes(showticklabels=False, scaleanchor="x", row=1, col=1)
    fig.update_layout(height=360, showlegend=False, margin={"t": 60, "b": 80, "l": 20, "r": 10}, title=" ")
    fw = go.FigureWidget(clear_toolbar(fig))
    dash = InterpolationDashboard(d1, d2, alpha_slider, fw, widgets.VBox([widgets.HBox([d1, d2]), alpha_slider, fw]),
                                  generator, classifier, float(scale))
    for w in (d1, d2, alpha_slider):
        w.observe(dash.redraw, names="value")
    dash.redraw()
    return dash
