"""Notebook 06: a MixUp explorer. Pick a pair of few-shot images and a λ; see the mix and the teacher's answer.

The teacher is reached only through the score box it is given. For each pair the
explorer asks the box once, in one batch, about all 101 mixes λ = 0.00, 0.01, …, 1.00
(101 counted queries under the phase ``"mixup explorer"``); moving the λ slider after
that costs nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from labkit.core.blackbox import BlackBox
from labkit.core.errors import AccessDenied
from labkit.methods.fsbbt import mix, mixup_keep_mask
from labkit.teaching.plots.layout import clear_toolbar, set_title

LAMBDAS = torch.linspace(0, 1, 101, dtype=torch.float64)


def _to_rgb(img: torch.Tensor) -> list:
    """C×H×W in [0, 1] → H×W×3 nested list of 0..255 for ``go.Image``."""
    img = img.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return (img.permute(1, 2, 0) * 255).round().to(torch.uint8).tolist()


@dataclass
class MixupExplorer:
    """The sliders, the live figure, and :meth:`redraw` (what the sliders' callbacks call)."""

    lam_slider: widgets.FloatSlider
    pair_slider: widgets.IntSlider
    figure: go.FigureWidget
    readout: widgets.HTML
    box: widgets.VBox
    images: torch.Tensor
    pairs: torch.Tensor  # P×2 indices into ``images``
    class_names: Sequence[str]
    low: float = 0.05
    high: float = 0.95
    teacher: BlackBox | None = field(default=None, repr=False)
    _cache: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def queries(self) -> int:
        """Teacher queries this explorer has spent (101 per pair looked at)."""
        return len(self._cache) * len(LAMBDAS)

    def answers(self, pair: int) -> torch.Tensor:
        """The teacher's probabilities for all 101 mixes of one pair (queried once, then cached)."""
        if pair not in self._cache:
            i, j = (int(v) for v in self.pairs[pair])
            x1, x2 = self.images[i:i + 1], self.images[j:j + 1]
            n = len(LAMBDAS)
            mixes = mix(x1.expand(n, *x1.shape[1:]), x2.expand(n, *x2.shape[1:]), LAMBDAS).clamp(0, 1)
            if self.teacher is None:
                raise AccessDenied("this explorer has no box to query; build it with mixup_explorer(box, ...)")
            with self.teacher.phase("mixup explorer"):
                self._cache[pair] = self.teacher(mixes).float().cpu()
        return self._cache[pair]

    def redraw(self, lam: float | None = None, pair: int | None = None) -> torch.Tensor:
        """Show the mix for (pair, λ) and the teacher's soft label for it; return that soft label."""
        lam = float(self.lam_slider.value if lam is None else lam)
        pair = int(self.pair_slider.value if pair is None else pair)
        k = int(round(lam * 100))
        probs = self.answers(pair)
        p_mix, p1, p2 = probs[k], probs[100], probs[0]
        blend = lam * p1 + (1 - lam) * p2
        i, j = (int(v) for v in self.pairs[pair])
        lam_t = torch.tensor([k / 100], dtype=torch.float64)
        img = mix(self.images[i:i + 1], self.images[j:j + 1], lam_t)[0]
        kept = bool(mixup_keep_mask(lam_t, self.low, self.high)[0])
        top = int(p_mix.argmax())
        with self.figure.batch_update():
            self.figure.data[0].z = _to_rgb(img)
            self.figure.data[1].y = p_mix.tolist()
            self.figure.data[2].y = blend.tolist()
            set_title(self.figure, f"λ = {k / 100:.2f}: " + ("kept by FS-BBT" if kept else
                                                             f"dropped by FS-BBT (λ ≤ {self.low} or λ ≥ {self.high})"))
        c1, c2 = int(p1.argmax()), int(p2.argmax())
        self.readout.value = (f"x1 looks like <b>{self.class_names[c1]}</b>, x2 like <b>{self.class_names[c2]}</b>. "
                              f"The teacher calls the mix <b>{self.class_names[top]}</b> ({float(p_mix[top]):.2f}). "
                              f"Explorer queries so far: {self.queries}.")
        return p_mix

    def _ipython_display_(self) -> None:  # pragma: no cover - display hook for notebooks
        from IPython.display import display

        display(self.box)


def mixup_explorer(box: BlackBox, images: torch.Tensor, class_names: Sequence[str], pairs: torch.Tensor | None = None,
                   lam: float = 0.5, low: float = 0.05, high: float = 0.95, n_pairs: int = 8,
                   seed: int = 0) -> MixupExplorer:
    """Build the explorer over ``images`` (few-shot images, C×H×W in [0, 1]) and a score ``box``.

    ``pairs`` (P×2 indices) default to ``n_pairs`` random pairs whose teacher classes differ.
    """
    if box.access != "score":
        raise AccessDenied(f"The MixUp explorer shows soft labels, so it needs a score box; "
                           f"this one is {box.access!r}. "
                           "Build one with BlackBox(model, access='score').")
    images = images.detach()
    if pairs is None:
        g = torch.Generator().manual_seed(seed)
        cand = torch.randint(0, images.shape[0], (n_pairs * 4, 2), generator=g)
        cand = cand[cand[:, 0] != cand[:, 1]]
        pairs = cand[:n_pairs]
    pairs = pairs.long().cpu()
    lam_slider = widgets.FloatSlider(value=lam, min=0.0, max=1.0, step=0.01, description="λ",
                                     continuous_update=True, readout_format=".2f",
                                     layout=widgets.Layout(width="480px"))
    pair_slider = widgets.IntSlider(value=0, min=0, max=len(pairs) - 1, description="pair",
                                    layout=widgets.Layout(width="480px"))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.08,
                        subplot_titles=("x̃ = λ·x1 + (1 − λ)·x2", "teacher's soft label"))
    side = images.shape[-1]
    fig.add_trace(go.Image(z=[[[0, 0, 0]] * side] * images.shape[-2], hoverinfo="skip"), row=1, col=1)
    zeros = [0.0] * len(class_names)
    fig.add_trace(go.Bar(x=list(class_names), y=zeros, name="teacher on the mix", marker_color="#4c72b0"),
                  row=1, col=2)
    fig.add_trace(go.Bar(x=list(class_names), y=zeros, name="λ·p(x1) + (1 − λ)·p(x2)", marker_color="#dd8452",
                         opacity=0.6), row=1, col=2)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_yaxes(range=[0, 1], title_text="probability", row=1, col=2)
    fig.update_xaxes(tickangle=45, tickfont={"size": 9}, row=1, col=2)
    # the legend sits under the class names, so it never covers the title or the subplot titles
    fig.update_layout(height=380, barmode="group", margin={"t": 70, "b": 120, "l": 30, "r": 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.42, "xanchor": "left", "x": 0.32},
                      title="MixUp")
    fw = go.FigureWidget(clear_toolbar(fig))
    readout = widgets.HTML()
    explorer = MixupExplorer(lam_slider, pair_slider, fw, readout, widgets.VBox([pair_slider, lam_slider, fw, readout]),
                             images, pairs, list(class_names), low, high, teacher=box)
    lam_slider.observe(lambda change: explorer.redraw(lam=change["new"]), names="value")
    pair_slider.observe(lambda change: explorer.redraw(pair=change["new"]), names="value")
    explorer.redraw(lam, 0)
    return explorer
