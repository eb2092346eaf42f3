"""Notebook 01's exercise: write the KD loss."""
from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.core.losses import kd_loss
from labkit.teaching.exercises import ExerciseResult, dedupe_hints, kind_to_learners, not_attempted

NAME = "KD loss"


@kind_to_learners(NAME)
def check_kd_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor | None]) -> ExerciseResult:
    """Check ``fn(student_logits, teacher_logits, tau)`` against τ²·KL(softmax(T/τ) ‖ softmax(S/τ)), batch mean."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(8, 10, generator=g) * s, torch.randn(8, 10, generator=g) * s, tau)
             for s, tau in ((1.0, 1.0), (3.0, 4.0), (5.0, 20.0))]
    msgs = []
    for s, t, tau in cases:
        got = fn(s.clone(), t.clone(), tau)
        if got is None:
            return not_attempted(NAME)
        want = kd_loss(s, t, tau=tau, alpha=0.0)
        if not isinstance(got, torch.Tensor) or got.dim() != 0:
            hint = "Return a single scalar tensor (reduce over the batch)."
            return ExerciseResult(NAME, False, True, [hint]).report()
        if not torch.allclose(got.float(), want, rtol=1e-4, atol=1e-6):
            ratio = float(got) / float(want) if float(want) else float("nan")
            hint = "Check the τ² factor." if abs(ratio - 1 / tau**2) < 1e-3 or abs(ratio - tau**2) < 1e-2 else \
                "Check batch-mean reduction (divide by the batch size, not the number of elements)." \
                if abs(ratio * 10 - 1) < 1e-3 or abs(ratio - 8) < 1e-3 else \
                "Use log_softmax for the student and softmax for the teacher, both at temperature τ."
            msgs.append(f"τ={tau}: got {float(got):.5f}, expected {float(want):.5f}. {hint}")
    if msgs:
        return ExerciseResult(NAME, False, True, dedupe_hints(msgs)).report()
    return ExerciseResult(NAME, True, True, ["Matches labkit.core.losses.kd_loss at τ = 1, 4 and 20."]).report()
