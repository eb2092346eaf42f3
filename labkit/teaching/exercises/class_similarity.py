"""Notebook 04's exercise: the class-similarity matrix of ZSKD."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from labkit.methods.zskd import class_similarity
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted, same_answer

NAME = "class similarity"


def _cosine(weight: torch.Tensor, dim: int = 1) -> torch.Tensor:
    unit = F.normalize(weight.float(), dim=dim)
    return unit @ unit.T


def _rows_to_unit_range(m: torch.Tensor, dim: int = 1) -> torch.Tensor:
    lo, hi = m.min(dim, keepdim=True).values, m.max(dim, keepdim=True).values
    return (m - lo) / (hi - lo)


def _slips() -> list[Slip]:
    """The class-similarity matrix's typical wrong answers, each with the advice that names it."""
    return [
        Slip("That is the raw cosine matrix: now min-max normalise every row to [0, 1].", lambda w: _cosine(w)),
        Slip("Normalise the weight rows to unit length first: cosine, not plain dot products.",
             lambda w: _rows_to_unit_range(w.float() @ w.float().T)),
        Slip("Normalise each ROW (dim=1, keepdim=True), not each column: row k holds class k's similarities.",
             lambda w: _rows_to_unit_range(_cosine(w), 0)),
        Slip("Min-max normalise each row on its own, not the whole matrix at once: every row's minimum becomes 0.",
             lambda w: (_cosine(w) - _cosine(w).min()) / (_cosine(w).max() - _cosine(w).min())),
        Slip("Each class's weight vector is a row: F.normalize(weight, dim=1), not dim=0.",
             lambda w: _rows_to_unit_range(_cosine(w, 0))),
        Slip("That is a distance, not a similarity: use the cosine itself, so that the diagonal is 1.",
             lambda w: _rows_to_unit_range(1 - _cosine(w))),
    ]


@kind_to_learners(NAME)
def check_class_similarity(fn: Callable[[torch.Tensor], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(weight)`` (weight: C×D final-layer matrix) against :func:`labkit.methods.zskd.class_similarity`."""
    g = torch.Generator().manual_seed(4)
    weights = [torch.randn(10, 84, generator=g), torch.randn(3, 5, generator=g) * 4,
               torch.randn(7, 16, generator=g) + 0.5]
    answers = []
    for weight in weights:
        got = fn(weight.clone())
        if got is None:
            return not_attempted(NAME)
        c, d = weight.shape
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (c, c):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            why = (" That is D×D, the similarities between columns: the rows of the weight are the classes, so "
                   "use unit @ unit.T." if shape == (d, d) else "")
            return ExerciseResult(NAME, False, True, [f"Return a C×C tensor; for a {tuple(weight.shape)} weight "
                                                     f"expected {(c, c)}, got {shape}.{why}"]).report()
        answers.append(got.detach().float().cpu())
    labels = [f"the {tuple(w.shape)} weight" for w in weights]
    verdict = diagnose(NAME, labels, [(w,) for w in weights], answers, [class_similarity(w) for w in weights],
                       _slips(), "Compute cos(w_i, w_j) between rows of the C×D weight, then map each row to [0, 1] "
                       "with (row − row.min) / (row.max − row.min).",
                       same=lambda got, want: same_answer(got, want, rtol=0.0, atol=1e-4))
    if verdict is not None:
        return verdict
    done = ("Cosine similarity of the class weight vectors, each row min-max normalised: 1 on the diagonal, "
            "0 for each row's least similar class.")
    return ExerciseResult(NAME, True, True, [done]).report()
