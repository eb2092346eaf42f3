"""Notebook 01: a temperature slider that redraws soft-label bars for a few images."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from labkit.core.losses import soften
from labkit.core.metrics import entropy
from labkit.teaching.plots.core import soft_label_figure, update_soft_label_figure
from labkit.teaching.widgets import FULL_LABEL


@dataclass
class TemperatureDashboard:
    """The slider, the live figure, and :meth:`redraw` (what the slider's callback calls)."""

    slider: widgets.FloatSlider
    figure: go.FigureWidget
    readout: widgets.HTML
    box: widgets.VBox
    logits: torch.Tensor

    def redraw(self, tau: float | None = None) -> torch.Tensor:
        """Recompute softmax(logits/τ) for the chosen images, redraw the bars, return the probabilities."""
        tau = float(self.slider.value if tau is None else tau)
        probs = soften(self.logits, tau)
        ent = entropy(probs)
        update_soft_label_figure(self.figure, probs, title=f"Soft labels at temperature τ = {tau:.1f}")
        self.readout.value = ("entropy per image: " + ", ".join(f"{e:.2f}" for e in ent.tolist()) +
                              f" nats (uniform = {float(torch.log(torch.tensor(float(probs.shape[1])))):.2f})")
        return probs

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def temperature_dashboard(logits: torch.Tensor, class_names: Sequence[str], titles: Sequence[str] | None = None,
                          tau: float = 4.0, tau_max: float = 20.0,
                          images: torch.Tensor | None = None) -> TemperatureDashboard:
    """Build the dashboard for ``logits`` (k×C, the teacher's raw scores for k images); ``images`` (k×C×H×W in
    [0, 1]) shows each image above its bars.

    Moving the ``temperature`` slider calls :meth:`TemperatureDashboard.redraw`.
    """
    logits = logits.detach().float().cpu()
    slider = widgets.FloatSlider(value=tau, min=0.5, max=tau_max, step=0.5, description="temperature",
                                 continuous_update=True, readout_format=".1f", style=FULL_LABEL,
                                 layout=widgets.Layout(width="520px"))
    fig = soft_label_figure(logits.shape[0], class_names, titles, widget=True, images=images)
    readout = widgets.HTML()
    dash = TemperatureDashboard(slider, fig, readout, widgets.VBox([slider, fig, readout]), logits)
    slider.observe(lambda change: dash.redraw(change["new"]), names="value")
    dash.redraw(tau)
    return dash
