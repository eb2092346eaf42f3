"""FS-BBT's MixUp: pairs of few-shot images mixed with a rounded λ ~ Beta(1, 1), the near-copies dropped.

``nomixup`` pairs are drawn by shuffling (:func:`mixup_pairs`), λ ~ Beta(1, 1) is rounded to 2 decimals and
λ ≤ 0.05 or λ ≥ 0.95 (near-copies of a real image) are dropped (:func:`sample_mixup_lambdas`,
:func:`mixup_keep_mask`); x̃ = λ·x₁ + (1 − λ)·x₂ (:func:`mix`) is kept for the rest (:func:`make_mixup_set`).
:class:`MixUpSynthesizer` has the box answer the kept mixes (its settings: :class:`MixUpSettings`).
:func:`online_mixup_hook` mixes the student's batches during training (no query); ZSDB3KD's
:func:`relabelled_mixup_hook` replaces part of every batch by mixes of pseudo-samples, each labelled by one query.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.core.blackbox import BlackBox
from labkit.core.errors import ConfigError
from labkit.core.train import BatchHook
from labkit.synthesis.base import SynthesisResult, Synthesizer
from labkit.synthesis.pseudo_samples import class_mean_soft_labels


class FewShotConfigError(ConfigError):
    """An FS-BBT setting that cannot work (too many shots for the pool, a bad threshold, ...)."""


def round_lambdas(lam: torch.Tensor, decimals: int = 2) -> torch.Tensor:
    """λ rounded to ``decimals`` places (float64, so 0.05 stays 0.05)."""
    scale = 10 ** decimals
    return torch.round(lam.double() * scale) / scale


def mixup_keep_mask(lam: torch.Tensor, low: float = 0.05, high: float = 0.95, decimals: int = 2) -> torch.Tensor:
    """True where a (rounded) λ lies strictly inside (low, high): λ ≤ low or λ ≥ high are dropped.

    The comparison is done on integer hundredths, so floating-point noise never
    decides whether λ = 0.05 is kept.
    """
    scale = 10 ** decimals
    k = torch.round(lam.double() * scale).long()
    return (k > round(low * scale)) & (k < round(high * scale))


def sample_mixup_lambdas(n: int, generator: torch.Generator | None = None, low: float = 0.05, high: float = 0.95,
                         decimals: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of λ ~ Beta(1, 1) (= U(0, 1)) rounded to ``decimals``; returns ``(λ, keep)``."""
    lam = round_lambdas(torch.rand(n, generator=generator, dtype=torch.float64), decimals)
    return lam, mixup_keep_mask(lam, low, high, decimals)


def mixup_pairs(n_images: int, n_pairs: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs by shuffling: per round a random permutation p, pairs (p[k], p[k+1 mod N]).

    Every image appears once as the first and once as the second member per round,
    and an image is never paired with itself (for N ≥ 2).
    """
    if n_images < 2:
        raise FewShotConfigError("MixUp needs at least 2 images to pair")
    rounds = -(-n_pairs // n_images)
    perms = torch.stack([torch.randperm(n_images, generator=generator) for _ in range(rounds)])
    first, second = perms.flatten(), perms.roll(-1, dims=1).flatten()
    return first[:n_pairs], second[:n_pairs]


def mix(x1: torch.Tensor, x2: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """λ·x₁ + (1 − λ)·x₂ with one λ per row, broadcast over the other dimensions."""
    lam = lam.to(device=x1.device, dtype=x1.dtype).view(-1, *([1] * (x1.dim() - 1)))
    return lam * x1 + (1 - lam) * x2


@dataclass
class MixupSet:
    """The MixUp images FS-BBT keeps, with their λ and parent indices, and how many draws were dropped."""

    images: torch.Tensor  # kept mixes, on the images' device
    lam: torch.Tensor  # their λ (float64, rounded)
    first: torch.Tensor  # index of x₁ in the few-shot set
    second: torch.Tensor  # index of x₂
    drawn: int  # λ draws in total (= nomixup)
    all_lam: torch.Tensor  # every drawn λ, kept or not (for histograms)

    @property
    def kept(self) -> int:
        """Number of mixes kept."""
        return int(self.images.shape[0])

    @property
    def dropped(self) -> int:
        """Number of draws dropped by the thresholds (the CVAE makes up for these)."""
        return self.drawn - self.kept


def make_mixup_set(images: torch.Tensor, total: int, generator: torch.Generator | None = None,
                   low: float = 0.05, high: float = 0.95, decimals: int = 2) -> MixupSet:
    """Draw ``total`` (pair, λ) and keep the mixes whose rounded λ lies inside (low, high)."""
    if not 0.0 <= low < high <= 1.0:
        raise FewShotConfigError(f"MixUp thresholds need 0 ≤ low < high ≤ 1, got low={low}, high={high}")
    if total <= 0:
        empty = images[:0]
        none = torch.zeros(0, dtype=torch.long)
        return MixupSet(empty, torch.zeros(0, dtype=torch.float64), none, none, 0, torch.zeros(0, dtype=torch.float64))
    first, second = mixup_pairs(images.shape[0], total, generator)
    lam, keep = sample_mixup_lambdas(total, generator, low, high, decimals)
    first, second, lam_kept = first[keep], second[keep], lam[keep]
    dev = images.device
    mixed = mix(images[first.to(dev)], images[second.to(dev)], lam_kept).clamp_(0.0, 1.0)
    return MixupSet(mixed, lam_kept, first, second, total, lam)


@dataclass(frozen=True)
class MixUpSettings:
    """How :class:`MixUpSynthesizer` mixes: λ is rounded to ``decimals`` places and kept strictly inside (low, high)."""

    low: float = 0.05
    high: float = 0.95
    decimals: int = 2


class MixUpSynthesizer(Synthesizer):
    """MixUp of a set of (few-shot) images, the kept mixes answered by the box in one call (phase ``phase``).

    ``synthesize(n)`` draws ``n`` (pair, λ) from ``generator`` (the method's, so its draws stay in the method's
    order) and returns the kept mixes with the box's answers; ``extras["mixup"]`` is the :class:`MixupSet` (λ,
    parents, every λ drawn). :meth:`nothing` is the result of an ingredient that is off.
    """

    def __init__(self, box: BlackBox, images: torch.Tensor, settings: MixUpSettings, num_classes: int, *,
                 generator: torch.Generator, phase: str = "mixup") -> None:
        super().__init__(box, device=images.device)
        self.images, self.settings, self.num_classes = images, settings, num_classes
        self.generator, self.phase = generator, phase

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        s = self.settings
        mixup = make_mixup_set(self.images, n, self.generator, s.low, s.high, s.decimals)
        if not mixup.kept:
            return self.nothing(mixup)
        with self.box.phase(self.phase):
            answers = self.box(mixup.images)
        return SynthesisResult(mixup.images, answers, extras={"mixup": mixup})

    def nothing(self, mixup: MixupSet | None = None) -> SynthesisResult:
        """No mix kept (or none drawn): empty images and answers, no query."""
        mixup = mixup if mixup is not None else make_mixup_set(self.images, 0)
        return SynthesisResult(mixup.images, self.images.new_zeros(0, self.num_classes), extras={"mixup": mixup})


def relabelled_mixup_hook(box: BlackBox, soft: torch.Tensor, y: torch.Tensor, fraction: float,
                          num_classes: int, phase: str = "relabel mixup") -> BatchHook:
    """A training batch hook: replace ``fraction`` of every batch by mixups of two of its images
    (``λ ~ U(0,1)`` per image), labelled by **one decision query each** (counted under ``phase``).

    A mixup's soft label is the mean soft label of the pseudo-samples of the class the teacher gives it
    (no distances are measured for it). Mixups fill the space *between* the classes' pseudo-samples,
    where the decision boundaries are, at one query per image.
    """
    class_soft = class_mean_soft_labels(soft, y, num_classes)

    def hook(xb: torch.Tensor, tb: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        m = int(round(fraction * xb.shape[0]))
        if m <= 0 or xb.shape[0] < 2:
            return xb, tb
        partner = torch.randperm(xb.shape[0], generator=gen)[:m].to(xb.device)
        lam = torch.rand(m, generator=gen).to(xb.device, xb.dtype).view((-1,) + (1,) * (xb.dim() - 1))
        mixed = (lam * xb[:m] + (1 - lam) * xb[partner]).clamp(0, 1)
        label = box(mixed.detach(), phase=phase).to(xb.device)
        soft_b, y_b = tb[0].clone(), tb[1].clone()
        soft_b[:m], y_b[:m] = class_soft[label], label
        xb = xb.clone()
        xb[:m] = mixed
        return xb, (soft_b, y_b)

    return hook


def online_mixup_hook(share: float = 0.5) -> BatchHook:
    """A :func:`~labkit.core.train.fit` batch hook: mix a random ``share`` of each batch with a shuffled partner.

    Each chosen image gets its own λ ~ U(0, 1); its soft target is mixed with the
    same λ. The teacher is not queried for these (they are the student's
    regularisation, not new transfer images).
    """
    def hook(x: torch.Tensor, targets: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        b = x.shape[0]
        partner = torch.randperm(b, generator=gen).to(x.device)
        lam = torch.rand(b, generator=gen).to(x.device)
        chosen = (torch.rand(b, generator=gen) < share).to(x.device)
        lam = torch.where(chosen, lam, torch.ones_like(lam))
        x_mixed = mix(x, x[partner], lam)
        t_mixed = tuple(mix(t.float(), t[partner].float(), lam) if t.is_floating_point() else t for t in targets)
        return x_mixed, t_mixed
    return hook
