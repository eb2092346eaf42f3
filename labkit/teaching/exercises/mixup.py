"""Notebook 06's exercise: FS-BBT's MixUp with rounding and thresholds."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.methods.fsbbt import mix, mixup_keep_mask, round_lambdas
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted, same_answer

NAME = "MixUp with thresholds"

MixupFn = Callable[..., "tuple[torch.Tensor, torch.Tensor] | None"]


def reference_mixup_with_thresholds(x1: torch.Tensor, x2: torch.Tensor, lam: torch.Tensor, low: float = 0.05,
                                    high: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """labkit's answer: round λ to 2 decimals, keep low < λ < high, return (mixes of the kept pairs, kept λ)."""
    lam_r = round_lambdas(lam)
    keep = mixup_keep_mask(lam_r, low, high)
    return mix(x1[keep], x2[keep], lam_r[keep]), lam_r[keep]


def _cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]]:
    g = torch.Generator().manual_seed(6)
    # edge cases: 0.0549 → 0.05 (dropped), 0.0551 → 0.06 (kept), 0.951 → 0.95 (dropped), 0.9449 → 0.94 (kept)
    edge = torch.tensor([0.3333, 0.049, 0.0549, 0.0551, 0.5, 0.951, 0.9449, 0.97, 0.001, 0.7777], dtype=torch.float64)
    rand = torch.rand(40, generator=g, dtype=torch.float64)
    cases = []
    for lam, low, high in ((edge, 0.05, 0.95), (rand, 0.05, 0.95), (rand, 0.2, 0.8)):
        x1 = torch.rand(len(lam), 1, 4, 4, generator=g)
        x2 = torch.rand(len(lam), 1, 4, 4, generator=g)
        cases.append((x1, x2, lam, low, high))
    return cases


def _slip(lam_for_threshold: str = "rounded", lam_for_mix: str = "rounded", lam_returned: str = "rounded",
          keep: str = "strict", swap: bool = False) -> MixupFn:
    """A MixUp answer with one or more of the typical slips (which λ is thresholded, mixed, returned; which pairs
    are kept; which image λ weighs)."""
    def answer(x1: torch.Tensor, x2: torch.Tensor, lam: torch.Tensor, low: float, high: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
        versions = {"raw": lam, "rounded": round_lambdas(lam), "one decimal": torch.round(lam * 10) / 10,
                    "floored": torch.floor(lam * 100) / 100}
        lam_t = versions[lam_for_threshold]
        strict = (lam > low) & (lam < high) if lam_for_threshold == "raw" else mixup_keep_mask(lam_t, low, high)
        mask = {"strict": strict, "all": torch.ones_like(lam_t, dtype=torch.bool),
                "inclusive": (torch.round(lam_t * 100) >= round(low * 100)) & (torch.round(lam_t * 100)
                                                                                <= round(high * 100)),
                "inverted": ~strict}[keep]
        a, b = (x2, x1) if swap else (x1, x2)
        return mix(a[mask], b[mask], versions[lam_for_mix][mask]), versions[lam_returned][mask]

    return answer


def _slips() -> list[Slip]:
    """MixUp's typical wrong answers, each with the advice that names it."""
    return [
        Slip("Nothing was dropped: keep only the pairs with low < λ < high.", _slip(keep="all")),
        Slip("You kept exactly the pairs that must be dropped: keep low < λ < high.", _slip(keep="inverted")),
        Slip("Round λ to 2 decimals *before* thresholding (and mix with the rounded λ).",
             _slip("raw", "raw", "raw")),
        Slip("λ = low and λ = high must be dropped too (λ ≤ low or λ ≥ high are dropped).", _slip(keep="inclusive")),
        Slip("Use the rounded λ everywhere: mix with it and return it, not the raw draws.",
             _slip(lam_for_mix="raw", lam_returned="raw")),
        Slip("Return the rounded λ of the kept pairs, not the raw draws.", _slip(lam_returned="raw")),
        Slip("Mix with the rounded λ, not the raw draws.", _slip(lam_for_mix="raw")),
        Slip("Round to 2 decimals (torch.round(lam * 100) / 100), not 1.", _slip("one decimal", "one decimal",
                                                                                "one decimal")),
        Slip("Round to the nearest hundredth (torch.round(lam * 100) / 100), not down.",
             _slip("floored", "floored", "floored")),
        Slip("λ weighs x1 and (1 − λ) weighs x2.", _slip(swap=True)),
    ]


def _shown(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> str:
    (mixed, kept), (want_x, want_lam) = got, want
    if kept.numel() != want_lam.numel():
        return f"kept {kept.numel()} λ, expected {want_lam.numel()}"
    if not torch.allclose(kept.double().flatten(), want_lam, atol=1e-6):
        return f"kept the right number of λ ({kept.numel()}) but not the right values"
    if tuple(mixed.shape) != tuple(want_x.shape):
        return f"the mixed images have shape {tuple(mixed.shape)}, expected {tuple(want_x.shape)}"
    return "the right λ, but the mixed images differ from λ·x1 + (1 − λ)·x2"


@kind_to_learners(NAME)
def check_mixup_with_thresholds(fn: MixupFn) -> ExerciseResult:
    """Check ``fn(x1, x2, lam, low, high) -> (mixed, kept_lam)`` against labkit's FS-BBT MixUp rules.

    ``lam`` are raw Beta(1, 1) draws, one per pair. The function must round them to
    2 decimals, drop λ ≤ low or λ ≥ high, and return λ·x₁ + (1 − λ)·x₂ for the kept
    pairs (in their original order) together with the kept, rounded λ.
    """
    cases, answers = _cases(), []
    for x1, x2, lam, low, high in cases:
        got = fn(x1.clone(), x2.clone(), lam.clone(), low, high)
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, tuple) or len(got) != 2 or not all(isinstance(t, torch.Tensor) for t in got):
            hint = "Return a tuple (mixed_images, kept_lambdas) of two tensors."
            return ExerciseResult(NAME, False, True, [hint]).report()
        answers.append((got[0].detach(), got[1].detach().flatten()))
    labels = [f"case {i + 1} (low={low}, high={high})" for i, (*_, low, high) in enumerate(cases)]
    verdict = diagnose(NAME, labels, cases, answers, [reference_mixup_with_thresholds(*case) for case in cases],
                       _slips(), "Round λ to 2 decimals, keep only low < λ < high, and mix each kept pair with its "
                       "rounded λ, broadcast over the pixels: lam.view(-1, 1, 1, 1).", shown=_shown,
                       same=lambda got, want: same_answer(got, want, rtol=0.0, atol=1e-5))
    if verdict is not None:
        return verdict
    done = "Rounding, both thresholds and the mixing match labkit's FS-BBT."
    return ExerciseResult(NAME, True, True, [done]).report()
