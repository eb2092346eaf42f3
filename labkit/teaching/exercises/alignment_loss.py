"""Notebook 07's exercise: write MEKD's generative alignment term ‖G(S/τ_g) − G(r_T/τ_g)‖₁."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit.synthesis.generators import ResponseGenerator, freeze
from labkit.teaching.exercises import ExerciseResult, dedupe_hints, kind_to_learners, not_attempted

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
    msgs: list[str] = []
    for scale, tau_g in ((1.0, 1.0), (4.0, 5.0), (8.0, 2.0)):
        s = (torch.randn(6, 10, generator=g) * scale).requires_grad_(True)
        t = torch.randn(6, 10, generator=g) * scale
        got = fn(gen, s, t.clone(), tau_g)
        if got is None:
            return not_attempted(NAME)
        want = reference_alignment(gen, s.detach(), t, tau_g)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            hint = "Return one scalar tensor (the mean over pixels and batch)."
            return ExerciseResult(NAME, False, True, [hint]).report()
        if not torch.allclose(got.detach().float(), want, rtol=1e-4, atol=1e-6):
            hint = "Divide both responses by τ_g before the generator." \
                if torch.allclose(got.detach().float(), reference_alignment(gen, s.detach() * tau_g, t * tau_g, tau_g),
                                  rtol=1e-4) and tau_g != 1 else \
                "Use the mean absolute difference (L1, .abs().mean()), not squares or sums."
            msgs.append(f"τ_g={tau_g}: got {float(got.detach()):.5f}, expected {float(want):.5f}. {hint}")
            continue
        if not got.requires_grad:
            msgs.append("The loss carries no gradient: do not detach the student's image or wrap it in no_grad().")
            continue
        got.backward()
        if s.grad is None or float(s.grad.abs().sum()) == 0:
            msgs.append("No gradient reached the student's logits: compute G(S/τ_g) with autograd on.")
    if any(p.grad is not None for p in gen.parameters()) or \
            any(not torch.equal(a, p.detach()) for a, p in zip(before, gen.parameters())):
        msgs.append("The generator must stay frozen: its weights got a gradient or changed.")
    if msgs:
        return ExerciseResult(NAME, False, True, dedupe_hints(msgs)).report()
    done = "Matches the reference at three temperatures; gradients reach S through the frozen G, and G is unchanged."
    return ExerciseResult(NAME, True, True, [done]).report()
