"""Notebook 09's exercise: IDEAL's class-balance (information) term."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.methods.ideal import information_loss
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted, same_answer

NAME = "IDEAL class-balance term"


def _cases() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    one_class = torch.zeros(20, 10)
    one_class[:, 3] = 8.0
    return [("random logits", torch.randn(32, 10, generator=g) * 3),
            ("every class once", torch.eye(10) * 20.0),
            ("one class only", one_class)]


def _slips() -> list[Slip]:
    """The class-balance term's typical wrong answers, each with the advice that names it."""
    def mean_p(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, 1).mean(0)

    return [
        Slip("That is the mean of each image's own p·log p: average the probabilities over the batch *first*, then "
             "take Σ p̄ log p̄.", lambda z: (torch.softmax(z, 1) * torch.log_softmax(z, 1)).sum(1).mean()),
        Slip("The sign: the term is Σ p̄ log p̄ (negative entropy), which the generator *minimises*.",
             lambda z: -(mean_p(z) * mean_p(z).log()).sum()),
        Slip("Sum over the classes, Σ_c p̄_c log p̄_c, not their mean.", lambda z: (mean_p(z) * mean_p(z).log()).mean()),
        Slip("Average the probabilities, not the logits: p̄ = softmax(logits, dim=1).mean(0), not "
             "softmax(logits.mean(0)).",
             lambda z: (torch.softmax(z.mean(0), 0) * torch.log_softmax(z.mean(0), 0)).sum()),
        Slip("Take the softmax over the classes (dim=1), then average over the batch (dim=0).",
             lambda z: (torch.softmax(z, 0).mean(1) * torch.softmax(z, 0).mean(1).log()).sum()),
        Slip("Use the natural log (torch.log), not log₂.", lambda z: (mean_p(z) * mean_p(z).log2()).sum()),
        Slip("Σ p̄ log p̄ needs both factors: multiply log p̄ by p̄ before summing.", lambda z: mean_p(z).log().sum()),
    ]


@kind_to_learners(NAME)
def check_information_loss(fn: Callable[[torch.Tensor], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(student_logits)`` against ``Σ_c p̄_c log p̄_c`` with p̄ the batch mean of softmax(logits)."""
    labels, cases, answers = [], [], []
    for what, logits in _cases():
        got = fn(logits.clone())
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            return ExerciseResult(NAME, False, True, ["Return one scalar tensor for the whole batch."]).report()
        labels.append(what)
        cases.append((logits,))
        answers.append(got.detach().float())
    verdict = diagnose(NAME, labels, cases, answers, [information_loss(z, "paper") for z, in cases], _slips(),
                       "Use p̄ = softmax(logits, dim=1).mean(0) and return (p̄ · log p̄).sum().",
                       shown=lambda got, want: f"got {float(got):.5f}, expected {float(want):.5f}",
                       same=lambda got, want: same_answer(got, want, rtol=0.0, atol=1e-5))
    if verdict is not None:
        return verdict
    return ExerciseResult(NAME, True, True, ["Matches labkit.methods.ideal.information_loss: −log 10 for a batch "
                                             "that covers every class equally, 0 for one class only."]).report()
