"""Figures for notebook 06 (FS-BBT): few-shot images, MixUp, the CVAE's latent space, sources, and N sweeps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure

from labkit.core.results import ResultRecord
from labkit.synthesis.cvae import CVAEBase, latent_grid
from labkit.teaching.plots.core import image_grid
from labkit.teaching.plots.layout import clear_toolbar


def _caption(probs: torch.Tensor, class_names: Sequence[str]) -> list[str]:
    conf, cls = probs.float().max(1)
    return [f"{class_names[int(c)]}\n{float(p):.2f}" for c, p in zip(cls.cpu(), conf.cpu())]  # full name, 2 lines


def few_shot_grid(images: torch.Tensor, probs: torch.Tensor, class_names: Sequence[str], per_class: int = 3,
                  title: str = "Few-shot images, captioned with the teacher's top class") -> Figure:
    """Up to ``per_class`` images for each class (by the teacher's argmax), one column per class."""
    top = probs.argmax(1).cpu()
    picks = []
    for r in range(per_class):
        for c in range(len(class_names)):
            members = torch.nonzero(top == c).flatten()
            picks.append(int(members[r]) if r < len(members) else -1)
    have = [i for i in picks if i >= 0]
    if not have:
        raise ValueError("no images to show")
    sel = torch.tensor(have)
    return image_grid(images[sel.to(images.device)], _caption(probs[sel.to(probs.device)], class_names),
                      ncols=min(len(class_names), len(have)), title=title, size=1.3)


def mixup_gallery(first: torch.Tensor, second: torch.Tensor, mixed: torch.Tensor, lam: torch.Tensor,
                  probs: torch.Tensor, class_names: Sequence[str], k: int = 6) -> Figure:
    """Rows x₁, x₂ and the mix for ``k`` MixUp pairs; the mix is captioned with λ and the teacher's answer."""
    k = min(k, mixed.shape[0])
    imgs = torch.cat([first[:k], second[:k], mixed[:k]]).detach().float().cpu()
    conf, cls = probs[:k].float().max(1)
    caps = ["x1"] * k + ["x2"] * k + [f"λ={float(lam[i]):.2f}\n{class_names[int(cls[i])]} {float(conf[i]):.2f}"
                                      for i in range(k)]
    return image_grid(imgs, caps, ncols=k, title="MixUp: x̃ = λ·x1 + (1 − λ)·x2, labelled by the teacher", size=1.3)


def lambda_histogram(all_lam: torch.Tensor, low: float = 0.05, high: float = 0.95) -> Figure:
    """Histogram of every drawn (rounded) λ, with the dropped ranges λ ≤ low and λ ≥ high shaded."""
    lam = all_lam.detach().double().cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(lam, bins=np.linspace(-0.005, 1.005, 102).tolist(), color="#4c72b0")
    ax.axvspan(-0.01, low + 0.005, color="#c44e52", alpha=0.2, label=f"dropped (λ ≤ {low} or λ ≥ {high})")
    ax.axvspan(high - 0.005, 1.01, color="#c44e52", alpha=0.2)
    dropped = float(((lam <= low + 1e-9) | (lam >= high - 1e-9)).mean()) if lam.size else 0.0
    ax.set_title(f"λ ~ Beta(1, 1) rounded to 2 decimals: {lam.size:,} draws, {dropped:.1%} dropped")
    ax.set_xlabel("λ")
    ax.set_ylabel("draws")
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    plt.close(fig)
    return fig


@torch.no_grad()
def cvae_manifold(cvae: CVAEBase, class_names: Sequence[str], classes: Sequence[int] | None = None, steps: int = 8,
                  span: float = 3.0, ncols: int = 5) -> Figure:
    """The decoder's 2-D manifold: for each class, decode a ``steps×steps`` grid of z over [−span, span]².

    The dashed square marks [−2, 2]², where N(0, I) puts about 91% of its latents; the border
    beyond it is what FS-BBT's U[−3, 3]² half reaches.
    """
    if cvae.latent_dim != 2:
        raise ValueError(f"the manifold plot needs a 2-D latent space, this CVAE has {cvae.latent_dim}")
    classes = list(range(len(class_names))) if classes is None else list(classes)
    dev = next(cvae.parameters()).device
    z = latent_grid(steps, span, device=dev)
    shape = cvae.input_shape
    nrows = -(-len(classes) // ncols)
    ncols = min(ncols, len(classes))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.45 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, classes):
        imgs = cvae.generate(z, torch.full((z.shape[0],), int(c), device=dev)).cpu()
        if len(shape) != 3:
            raise ValueError("the manifold plot needs image-shaped inputs (C×H×W)")
        ch, h, w = shape
        tiles = imgs.view(steps, steps, ch, h, w).permute(2, 0, 3, 1, 4).reshape(ch, steps * h, steps * w)
        if ch == 1:
            ax.imshow(tiles[0], cmap="gray", vmin=0, vmax=1, extent=(-span, span, -span, span))
        else:
            ax.imshow(tiles.permute(1, 2, 0).numpy(), extent=(-span, span, -span, span))
        ax.plot([-2, 2, 2, -2, -2], [-2, -2, 2, 2, -2], ls="--", lw=0.8, color="#dd8452")
        ax.set_title(str(class_names[int(c)]), fontsize=9)
    fig.suptitle(f"CVAE decoder manifold per class, z ∈ [−{span:g}, {span:g}]² (dashed: [−2, 2]²)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def cvae_samples(images: torch.Tensor, is_ood: torch.Tensor, probs: torch.Tensor, class_names: Sequence[str],
                 k: int = 10) -> Figure:
    """Two rows: ``k`` CVAE images from z ~ N(0, I), then ``k`` from z ~ U[−3, 3]²; captioned with the teacher's
    answer."""
    in_idx = torch.nonzero(~is_ood).flatten()[:k]
    ood_idx = torch.nonzero(is_ood).flatten()[:k]
    k = min(len(in_idx), len(ood_idx)) if len(in_idx) and len(ood_idx) else max(len(in_idx), len(ood_idx))
    sel = torch.cat([in_idx[:k], ood_idx[:k]])
    return image_grid(images[sel], _caption(probs[sel], class_names), ncols=max(k, 1),
                      title="CVAE samples: top row z ~ N(0, I), bottom row z ~ U[−3, 3]² (out of distribution)",
                      size=1.3)


def latent_confidence(z: torch.Tensor, is_ood: torch.Tensor, probs: torch.Tensor) -> Figure:
    """Sampled latents coloured by the teacher's confidence on their decoded image (○ N(0, I), × U[−3, 3]²)."""
    z, is_ood = z.detach().float().cpu(), is_ood.cpu()
    conf = probs.float().max(1).values.cpu()
    fig, ax = plt.subplots(figsize=(4.8, 4))
    sc = None
    for mask, marker, name in ((~is_ood, "o", "z ~ N(0, I)"), (is_ood, "x", "z ~ U[−3, 3]²")):
        if bool(mask.any()):
            sc = ax.scatter(z[mask, 0], z[mask, 1], c=conf[mask], cmap="viridis", vmin=0, vmax=1, s=10,
                            marker=marker, label=f"{name}: mean conf {float(conf[mask].mean()):.2f}")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="teacher's top probability")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title("Where the teacher is unsure")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    plt.close(fig)
    return fig


def label_distribution(prob_sets: Mapping[str, torch.Tensor], class_names: Sequence[str],
                       title: str = "Teacher's top class in each source") -> go.Figure:
    """Grouped bars: the share of each source's images whose teacher argmax is each class."""
    fig = go.Figure()
    for name, probs in prob_sets.items():
        n = probs.shape[0]
        counts = torch.bincount(probs.argmax(1).cpu(), minlength=len(class_names)).float() if n else \
            torch.zeros(len(class_names))
        fig.add_trace(go.Bar(x=list(class_names), y=(counts / max(n, 1)).tolist(), name=f"{name} ({n:,})"))
    fig.add_hline(y=1 / len(class_names), line_dash="dot", annotation_text="uniform")
    fig.update_layout(barmode="group", title=title, yaxis_title="share of images", height=360,
                      margin={"t": 60, "b": 80, "l": 50, "r": 10})
    fig.update_xaxes(tickangle=45)
    return clear_toolbar(fig)


def accuracy_vs_shots(records: Sequence[ResultRecord], title: str = "FS-BBT student against N") -> go.Figure:
    """Test accuracy and agreement of FS-BBT students against their number of shots N, with the teacher's accuracy."""
    rows = sorted(((int(str(r.extras.get("shots", 0))), r) for r in records), key=lambda t: t[0])
    xs = [n for n, _ in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[r.student_acc for _, r in rows], mode="lines+markers", name="test accuracy"))
    fig.add_trace(go.Scatter(x=xs, y=[r.agreement for _, r in rows], mode="lines+markers",
                             name="agreement with teacher"))
    if rows:
        fig.add_hline(y=rows[0][1].teacher_acc, line_dash="dash", annotation_text="teacher")
    fig.update_layout(title=title, xaxis_title="N (few-shot images)", yaxis_title="fraction", height=340,
                      hovermode="x unified", margin={"t": 60, "b": 50, "l": 50, "r": 10})
    fig.update_xaxes(type="log", tickvals=xs)
    return clear_toolbar(fig)
