"""Notebook 07's exercise: write MEKD's generative alignment term ‖G(S/τ_g) − G(r_T/τ_g)‖₁."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit.synthesis.generators import ResponseGenerator, freeze
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted

NAME = "Generative alignment loss"

AlignmentFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, float], "torch.Tensor | None"]


def reference_alignment(generator: nn.Module, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                        tau_g: float) -> torch.Tensor:
    """Mean absolute pixel difference between G(S/τ_g) and G(r_T/τ_g); no gradient through the teacher's image."""
    with torch.no_grad():
        target = generator(teacher_logits / tau_g)
    return (generator(student_logits / tau_g) - target).abs().mean()


def _checker_generator(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    g = ResponseGenerator(10, (1, 28, 28), width=8)
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        g.train()
        g(torch.randn(64, 10) * 2)
    return freeze(g)


def _slips() -> list[Slip]:
    """The alignment term's typical wrong answers, each with the advice that names it."""
    def diff(g: nn.Module, s: torch.Tensor, t: torch.Tensor, s_tau: float, t_tau: float) -> torch.Tensor:
        with torch.no_grad():
            return g(s / s_tau) - g(t / t_tau)

    return [
        Slip("Divide both responses by τ_g before the generator: G(S/τ_g) and G(r_T/τ_g).",
             lambda g, s, t, tau: diff(g, s, t, 1.0, 1.0).abs().mean()),
        Slip("Divide the responses by τ_g, do not multiply.",
             lambda g, s, t, tau: diff(g, s, t, 1 / tau, 1 / tau).abs().mean()),
        Slip("Divide the student's logits by τ_g too, not only the teacher's.",
             lambda g, s, t, tau: diff(g, s, t, 1.0, tau).abs().mean()),
        Slip("Divide the teacher's logits by τ_g too, not only the student's.",
             lambda g, s, t, tau: diff(g, s, t, tau, 1.0).abs().mean()),
        Slip("That is the squared (L2) difference: use the mean absolute difference, .abs().mean().",
             lambda g, s, t, tau: diff(g, s, t, tau, tau).pow(2).mean()),
        Slip("Take the absolute value before the mean: the signed differences cancel out.",
             lambda g, s, t, tau: diff(g, s, t, tau, tau).mean()),
        Slip("The reduction: that is the sum; take the mean over the batch and the pixels, .abs().mean().",
             lambda g, s, t, tau: diff(g, s, t, tau, tau).abs().sum()),
        Slip("The reduction: that sums over each image's pixels; take the mean over the pixels too, .abs().mean().",
             lambda g, s, t, tau: diff(g, s, t, tau, tau).abs().flatten(1).sum(1).mean()),
    ]


@kind_to_learners(NAME)
def check_alignment_loss(fn: AlignmentFn, generator: nn.Module | None = None) -> ExerciseResult:
    """Check ``fn(generator, student_logits, teacher_logits, tau_g)`` against the reference term.

    Also checks that gradients reach the student's logits through the frozen generator and
    that the generator's weights receive no gradient and stay unchanged.
    """
    gen = generator if generator is not None else _checker_generator()
    gen = freeze(gen)
    before = [p.detach().clone() for p in gen.parameters()]
    g = torch.Generator().manual_seed(1)
    cases, answers, students = [], [], []
    for scale, tau_g in ((1.0, 1.0), (4.0, 5.0), (8.0, 2.0)):
        s = (torch.randn(6, 10, generator=g) * scale).requires_grad_(True)
        t = torch.randn(6, 10, generator=g) * scale
        got = fn(gen, s, t.clone(), tau_g)
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            hint = "Return one scalar tensor (the mean over pixels and batch)."
            return ExerciseResult(NAME, False, True, [hint]).report()
        cases.append((gen, s.detach(), t, tau_g))
        answers.append(got)
        students.append(s)
    verdict = diagnose(NAME, [f"τ_g = {tau:g}" for *_, tau in cases], cases, [a.detach().float() for a in answers],
                       [reference_alignment(*case) for case in cases], _slips(),
                       "Compute both images, G(S/τ_g) and G(r_T/τ_g), and return (G(S/τ_g) − G(r_T/τ_g)).abs().mean().",
                       shown=lambda got, want: f"got {float(got):.5f}, expected {float(want):.5f}")
    if verdict is not None:
        return verdict
    msgs: list[str] = []
    if not all(a.requires_grad for a in answers):
        msgs.append("The loss carries no gradient: do not detach the student's image or wrap it in no_grad().")
    else:
        for got in answers:
            got.backward()
        if any(s.grad is None or float(s.grad.abs().sum()) == 0 for s in students):
            msgs.append("No gradient reached the student's logits: compute G(S/τ_g) with autograd on.")
    if any(p.grad is not None for p in gen.parameters()) or \
            any(not torch.equal(a, p.detach()) for a, p in zip(before, gen.parameters())):
        msgs.append("The generator must stay frozen: its weights got a gradient or changed.")
    if msgs:
        return ExerciseResult(NAME, False, True, msgs).report()
    done = "Matches the reference at three temperatures; gradients reach S through the frozen G, and G is unchanged."
    return ExerciseResult(NAME, True, True, [done]).report()
