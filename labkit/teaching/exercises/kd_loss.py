"""Notebook 01's exercise: write the KD loss."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from labkit.core.losses import kd_loss
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted

NAME = "KD loss"


def _kl(log_p_student: torch.Tensor, p_teacher: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    if reduction == "mean":  # what reduction="mean" gives, without its deprecation warning
        return F.kl_div(log_p_student, p_teacher, reduction="sum") / p_teacher.numel()
    return F.kl_div(log_p_student, p_teacher, reduction=reduction)


def _slips() -> list[Slip]:
    """The KD term's typical wrong answers, each with the advice that names it (tests/test_checker_messages.py)."""
    ls, sm = F.log_softmax, F.softmax
    return [
        Slip("The τ² factor is missing: multiply the KL by τ² (it keeps the gradients' size the same at every τ).",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t / tau, 1))),
        Slip("The factor is τ², not τ: multiply the KL by tau ** 2.",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t / tau, 1)) * tau),
        Slip("Multiply the KL by τ², do not divide by it.",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t / tau, 1)) / tau**2),
        Slip("The reduction: reduction='mean' divides by every element (batch × classes); use "
             "reduction='batchmean', which divides by the batch size.",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t / tau, 1), "mean") * tau**2),
        Slip("The reduction: that is the sum over the batch; average it (reduction='batchmean').",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t / tau, 1), "sum") * tau**2),
        Slip("kl_div's first argument must be log-probabilities: pass log_softmax(S/τ), not softmax(S/τ).",
             lambda s, t, tau: _kl(sm(s / tau, 1), sm(t / tau, 1)) * tau**2),
        Slip("kl_div's second argument is the teacher's probabilities: softmax(T/τ), not log_softmax.",
             lambda s, t, tau: _kl(ls(s / tau, 1), ls(t / tau, 1)) * tau**2),
        Slip("The direction is swapped: the target is the teacher, KL(softmax(T/τ) ‖ softmax(S/τ)) = "
             "kl_div(log_softmax(S/τ), softmax(T/τ)).",
             lambda s, t, tau: _kl(ls(t / tau, 1), sm(s / tau, 1)) * tau**2),
        Slip("The sign: KL is ≥ 0, so the loss is +τ²·KL.",
             lambda s, t, tau: -_kl(ls(s / tau, 1), sm(t / tau, 1)) * tau**2),
        Slip("Divide both logits by τ before the softmaxes (the τ² factor alone is not the temperature).",
             lambda s, t, tau: _kl(ls(s, 1), sm(t, 1)) * tau**2),
        Slip("Divide the student's logits by τ too, not only the teacher's.",
             lambda s, t, tau: _kl(ls(s, 1), sm(t / tau, 1)) * tau**2),
        Slip("Divide the teacher's logits by τ too, not only the student's.",
             lambda s, t, tau: _kl(ls(s / tau, 1), sm(t, 1)) * tau**2),
        Slip("The temperature τ is not used: divide both logits by τ and multiply the KL by τ².",
             lambda s, t, tau: _kl(ls(s, 1), sm(t, 1))),
        Slip("That is the cross-entropy −Σ p_T log p_S, which is KL plus the teacher's entropy: use "
             "F.kl_div(log_softmax(S/τ), softmax(T/τ), reduction='batchmean').",
             lambda s, t, tau: -(sm(t / tau, 1) * ls(s / tau, 1)).sum(1).mean() * tau**2),
        Slip("Take the softmaxes over the classes (dim=1), not over the batch (dim=0).",
             lambda s, t, tau: _kl(ls(s / tau, 0), sm(t / tau, 0)) * tau**2),
    ]


@kind_to_learners(NAME)
def check_kd_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(student_logits, teacher_logits, tau)`` against τ²·KL(softmax(T/τ) ‖ softmax(S/τ)), batch mean."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(8, 10, generator=g) * s, torch.randn(8, 10, generator=g) * s, tau)
             for s, tau in ((1.0, 1.0), (3.0, 4.0), (5.0, 20.0))]
    answers = []
    for s, t, tau in cases:
        got = fn(s.clone(), t.clone(), tau)
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            hint = "Return a single scalar tensor (reduce over the batch)."
            return ExerciseResult(NAME, False, True, [hint]).report()
        answers.append(got.detach().float())
    wants = [kd_loss(s, t, tau=tau, alpha=0.0) for s, t, tau in cases]
    verdict = diagnose(NAME, [f"τ = {tau:g}" for *_, tau in cases], cases, answers, wants, _slips(),
                       "Build it step by step: log_softmax(S/τ, dim=1), softmax(T/τ, dim=1), "
                       "F.kl_div(..., reduction='batchmean'), times τ².",
                       shown=lambda got, want: f"got {float(got):.5f}, expected {float(want):.5f}")
    if verdict is not None:
        return verdict
    return ExerciseResult(NAME, True, True, ["Matches labkit.core.losses.kd_loss at τ = 1, 4 and 20."]).report()
