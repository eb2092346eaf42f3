"""Notebook 09's exercise: IDEAL's class-balance (information) term."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.methods.ideal import information_loss
from labkit.teaching.exercises import ExerciseResult, kind_to_learners, not_attempted

NAME = "IDEAL class-balance term"


def _cases() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    one_class = torch.zeros(20, 10)
    one_class[:, 3] = 8.0
    return [("random logits", torch.randn(32, 10, generator=g) * 3),
            ("every class once", torch.eye(10) * 20.0),
            ("one class only", one_class)]


@kind_to_learners(NAME)
def check_information_loss(fn: Callable[[torch.Tensor], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(student_logits)`` against ``Σ_c p̄_c log p̄_c`` with p̄ the batch mean of softmax(logits)."""
    msgs = []
    for what, logits in _cases():
        got = fn(logits.clone())
        if got is None:
            return not_attempted(NAME)
        want = information_loss(logits, "paper")
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            return ExerciseResult(NAME, False, True, ["Return one scalar tensor for the whole batch."]).report()
        if not torch.allclose(got.float(), want, atol=1e-5):
            per_sample = (torch.softmax(logits, 1) * torch.log_softmax(logits, 1)).sum(1).mean()
            hint = ("That is the mean of each image's own p·log p: average the probabilities over the batch *first*, "
                    "then take Σ p̄ log p̄." if torch.allclose(got.float(), per_sample, atol=1e-5) else
                    "The sign: the term is Σ p̄ log p̄ (negative entropy), which the generator *minimises*."
                    if torch.allclose(got.float(), -want, atol=1e-5) else
                    "Use p̄ = softmax(logits, dim=1).mean(0) and return (p̄ · log p̄).sum().")
            msgs.append(f"{what}: got {float(got):.5f}, expected {float(want):.5f}. {hint}")
    if msgs:
        return ExerciseResult(NAME, False, True, msgs).report()
    return ExerciseResult(NAME, True, True, ["Matches labkit.methods.ideal.information_loss: −log 10 for a batch "
                                             "that covers every class equally, 0 for one class only."]).report()
