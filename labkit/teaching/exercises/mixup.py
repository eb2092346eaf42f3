"""Notebook 06's exercise: FS-BBT's MixUp with rounding and thresholds."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.methods.fsbbt import mix, mixup_keep_mask, round_lambdas
from labkit.teaching.exercises import ExerciseResult, dedupe_hints, kind_to_learners, not_attempted

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


def _hint(got_lam: torch.Tensor, lam: torch.Tensor, low: float, high: float) -> str:
    raw = lam[(lam > low) & (lam < high)]
    rounded = round_lambdas(lam)
    if got_lam.numel() == lam.numel():
        return f"Nothing was dropped: keep only λ with {low} < λ < {high}."
    if got_lam.numel() == raw.numel() and torch.allclose(got_lam.double(), raw, atol=1e-9):
        return "Round λ to 2 decimals *before* thresholding (and mix with the rounded λ)."
    inclusive = rounded[(rounded >= low - 1e-9) & (rounded <= high + 1e-9)]
    if got_lam.numel() == inclusive.numel():
        return f"λ = {low} and λ = {high} must be dropped too (λ ≤ low or λ ≥ high are dropped)."
    return "Round λ to 2 decimals, then keep only low < λ < high."


@kind_to_learners(NAME)
def check_mixup_with_thresholds(fn: MixupFn) -> ExerciseResult:
    """Check ``fn(x1, x2, lam, low, high) -> (mixed, kept_lam)`` against labkit's FS-BBT MixUp rules.

    ``lam`` are raw Beta(1, 1) draws, one per pair. The function must round them to
    2 decimals, drop λ ≤ low or λ ≥ high, and return λ·x₁ + (1 − λ)·x₂ for the kept
    pairs (in their original order) together with the kept, rounded λ.
    """
    msgs: list[str] = []
    for i, (x1, x2, lam, low, high) in enumerate(_cases()):
        got = fn(x1.clone(), x2.clone(), lam.clone(), low, high)
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, tuple) or len(got) != 2 or not all(isinstance(t, torch.Tensor) for t in got):
            hint = "Return a tuple (mixed_images, kept_lambdas) of two tensors."
            return ExerciseResult(NAME, False, True, [hint]).report()
        mixed, kept = got
        want_x, want_lam = reference_mixup_with_thresholds(x1, x2, lam, low, high)
        if kept.numel() != want_lam.numel() or not torch.allclose(kept.double().flatten(), want_lam, atol=1e-6):
            what = (f"kept {kept.numel()} λ, expected {want_lam.numel()}" if kept.numel() != want_lam.numel() else
                    f"kept the right number of λ ({kept.numel()}) but not the right values")
            msgs.append(f"case {i + 1} (low={low}, high={high}): {what}. "
                        f"{_hint(kept.double().flatten(), lam, low, high)}")
            continue
        if tuple(mixed.shape) != tuple(want_x.shape):
            msgs.append(f"case {i + 1}: mixed images have shape {tuple(mixed.shape)}, expected {tuple(want_x.shape)}.")
            continue
        if not torch.allclose(mixed.float(), want_x.float(), atol=1e-5):
            swapped = mix(x2, x1, round_lambdas(lam))[mixup_keep_mask(round_lambdas(lam), low, high)]
            hint = "λ weighs x1 and (1 − λ) weighs x2." if torch.allclose(mixed.float(), swapped.float(), atol=1e-5) \
                else "Mix with the rounded λ, one λ per pair, broadcast over the pixels: lam.view(-1, 1, 1, 1)."
            msgs.append(f"case {i + 1}: the mixed images differ from λ·x1 + (1 − λ)·x2. {hint}")
    if msgs:
        return ExerciseResult(NAME, False, True, dedupe_hints(msgs)).report()
    done = "Rounding, both thresholds and the mixing match labkit's FS-BBT."
    return ExerciseResult(NAME, True, True, [done]).report()
