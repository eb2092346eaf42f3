"""Notebook 04's exercise: the class-similarity matrix of ZSKD."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.methods.zskd import class_similarity
from labkit.teaching.exercises import ExerciseResult, kind_to_learners, not_attempted

NAME = "class similarity"


def _hint(got: torch.Tensor, weight: torch.Tensor, want: torch.Tensor) -> str:
    """Guess the most likely slip from what the learner's matrix looks like."""
    w = weight.float()
    raw_cos = torch.nn.functional.normalize(w, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
    dots = w @ w.T
    if torch.allclose(got, raw_cos, atol=1e-4):
        return "That is the raw cosine matrix: now min-max normalise every row to [0, 1]."
    lo, hi = dots.min(1, keepdim=True).values, dots.max(1, keepdim=True).values
    if torch.allclose(got, (dots - lo) / (hi - lo), atol=1e-4):
        return "Normalise the weight rows to unit length first: cosine, not plain dot products."
    lo_c, hi_c = raw_cos.min(0, keepdim=True).values, raw_cos.max(0, keepdim=True).values
    if torch.allclose(got, (raw_cos - lo_c) / (hi_c - lo_c), atol=1e-4):
        return "Normalise each ROW (dim=1, keepdim=True), not each column."
    if torch.allclose(got, want.T, atol=1e-4):
        return "Your matrix is transposed: row k should hold class k's similarities."
    return ("Compute cos(w_i, w_j) between rows of the C×D weight, then map each row to [0, 1] with "
            "(row − row.min) / (row.max − row.min).")


@kind_to_learners(NAME)
def check_class_similarity(fn: Callable[[torch.Tensor], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(weight)`` (weight: C×D final-layer matrix) against :func:`labkit.methods.zskd.class_similarity`."""
    g = torch.Generator().manual_seed(4)
    cases = [torch.randn(10, 84, generator=g), torch.randn(3, 5, generator=g) * 4,
             torch.randn(7, 16, generator=g) + 0.5]
    for weight in cases:
        got = fn(weight.clone())
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (weight.shape[0], weight.shape[0]):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return ExerciseResult(NAME, False, True, [f"Return a C×C tensor; for a {tuple(weight.shape)} weight "
                                                     f"expected {(weight.shape[0],) * 2}, got {shape}."]).report()
        want = class_similarity(weight)
        got = got.detach().float().cpu()
        if not torch.allclose(got, want, atol=1e-4):
            return ExerciseResult(NAME, False, True, [_hint(got, weight, want)]).report()
    done = ("Cosine similarity of the class weight vectors, each row min-max normalised: 1 on the diagonal, "
            "0 for each row's least similar class.")
    return ExerciseResult(NAME, True, True, [done]).report()
