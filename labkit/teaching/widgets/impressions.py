"""Notebook 04 dashboards: a β slider over Dirichlet samples on a 3-class simplex, and a
slider that plays the optimisation of Data Impressions from noise to impression."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from labkit.core.metrics import entropy
from labkit.methods.zskd import dirichlet_targets
from labkit.synthesis.base import Snapshot
from labkit.teaching.plots.impressions import evolution_figure, ternary_figure, update_evolution, update_ternary


@dataclass
class SimplexDashboard:
    """The β slider, the live ternary figure, and :meth:`redraw` (what the slider's callback calls)."""

    slider: widgets.FloatLogSlider
    figure: go.FigureWidget
    readout: widgets.HTML
    box: widgets.VBox
    similarity: torch.Tensor  # 3×3 block of the class-similarity matrix
    samples_per_class: int
    seed: int

    def redraw(self, beta: float | None = None) -> torch.Tensor:
        """Sample ``Dir(β·C_k)`` for each of the 3 classes, redraw the simplex, return the samples (N×3)."""
        beta = float(self.slider.value if beta is None else beta)
        classes = torch.arange(3).repeat_interleave(self.samples_per_class)
        betas = torch.full((classes.numel(),), beta)
        samples = dirichlet_targets(self.similarity, classes, betas, seed=self.seed)
        update_ternary(self.figure, samples, classes, title=f"Dirichlet targets at β = {beta:.3g}")
        self.readout.value = (f"mean entropy of the samples: <b>{float(entropy(samples).mean()):.3f}</b> nats "
                              f"(uniform over 3 classes = {float(torch.log(torch.tensor(3.0))):.3f})")
        return samples

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def simplex_dashboard(similarity: torch.Tensor, class_idx: Sequence[int], class_names: Sequence[str],
                      samples_per_class: int = 300, beta: float = 1.0, seed: int = 0) -> SimplexDashboard:
    """Dirichlet targets for three classes on a ternary plot, with a log-scale β slider.

    ``similarity`` is the full row-normalised C×C matrix; the 3×3 block of ``class_idx``
    gives each class's concentration ``β·C_k`` over the three corners.
    """
    idx = torch.as_tensor(list(class_idx))
    if idx.numel() != 3:
        raise ValueError("pick exactly 3 classes for the simplex")
    block = similarity.detach().float().cpu()[idx][:, idx]
    names = [class_names[int(i)] for i in idx]
    slider = widgets.FloatLogSlider(value=beta, base=10, min=-2, max=1, step=0.05, description="β",
                                    continuous_update=True, readout_format=".3f", layout=widgets.Layout(width="480px"))
    fig = ternary_figure(names, widget=True)
    readout = widgets.HTML()
    dash = SimplexDashboard(slider, fig, readout, widgets.VBox([slider, fig, readout]), block, samples_per_class, seed)
    slider.observe(lambda change: dash.redraw(change["new"]), names="value")
    dash.redraw(beta)
    return dash


@dataclass
class EvolutionDashboard:
    """A step slider over the crafting snapshots, the live image grid, and :meth:`show`."""

    slider: widgets.SelectionSlider
    figure: go.FigureWidget
    box: widgets.VBox
    snapshots: list[Snapshot]

    def show(self, step: int | None = None) -> Snapshot:
        """Display the snapshot taken at ``step`` (default: the slider's) and return it."""
        step = int(self.slider.value if step is None else step)
        by_step = {s.step: s for s in self.snapshots}
        if step not in by_step:
            raise ValueError(f"no snapshot at step {step}; snapshots exist at steps {sorted(by_step)}")
        update_evolution(self.figure, by_step[step])
        return by_step[step]

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def impression_evolution_dashboard(snapshots: Sequence[Snapshot], class_names: Sequence[str]) -> EvolutionDashboard:
    """Play the optimisation from noise (step 0) to the finished impressions with a slider (and a play button)."""
    snaps = sorted(snapshots, key=lambda s: s.step)
    if not snaps:
        raise ValueError("no snapshots: craft impressions with snapshots > 0 first")
    steps = [s.step for s in snaps]
    slider = widgets.SelectionSlider(options=steps, value=steps[0], description="Adam step",
                                     continuous_update=True, layout=widgets.Layout(width="480px"))
    play = widgets.Play(min=0, max=len(steps) - 1, step=1, interval=400, description="play")
    index = widgets.IntSlider(min=0, max=len(steps) - 1, layout=widgets.Layout(display="none"))
    widgets.jslink((play, "value"), (index, "value"))
    index.observe(lambda change: setattr(slider, "value", steps[change["new"]]), names="value")
    fig = evolution_figure(snaps[0], class_names, widget=True)
    dash = EvolutionDashboard(slider, fig, widgets.VBox([widgets.HBox([play, slider]), index, fig]), list(snaps))
    slider.observe(lambda change: dash.show(change["new"]), names="value")
    return dash
