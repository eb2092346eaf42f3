"""Notebook 00's exercise: measure accuracy through a decision box, spending exactly one query per image."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.errors import QueryBudgetExceeded
from labkit.teaching.exercises import ExerciseResult, not_attempted

NAME = "accuracy through a decision box"


def check_decision_accuracy(fn: Callable[[BlackBox, torch.Tensor, torch.Tensor], float | None]) -> ExerciseResult:
    """Check ``fn(box, x, y)`` returns the teacher's accuracy on (x, y), spending exactly ``len(x)`` queries in one
    batched box call."""
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.rand(200, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (200,), generator=g)
    truth = float((model(x).argmax(1) == y).float().mean())
    box = BlackBox(model, access="decision", budget=len(x), input_shape=(1, 4, 4), num_classes=3)
    try:
        got = fn(box, x, y)
    except QueryBudgetExceeded:
        return ExerciseResult(NAME, False, True, [
            f"Your function asked for more than {len(x)} queries, the budget: call box(x) once for the whole batch "
            "and reuse its answer."]).report()
    except Exception as exc:  # noqa: BLE001 - report the learner's error kindly
        return ExerciseResult(NAME, False, True, [f"Your function raised {type(exc).__name__}: {exc}"]).report()
    if got is None:
        return not_attempted(NAME)
    msgs = []
    if abs(float(got) - truth) > 1e-6:
        slips = {100 * truth: "Return a fraction in [0, 1], not a percentage.",
                 1 - truth: "That is the error rate: the accuracy is the share of images where box(x) == y.",
                 truth * len(x): "That is the number of right answers: divide by the number of images (the mean)."}
        hint = next((h for value, h in slips.items() if abs(float(got) - value) <= 1e-6 * max(1.0, value)),
                    "Compare box(x) with y and return the share that agree.")
        msgs.append(f"Accuracy {float(got):.4f} but the teacher's is {truth:.4f}. {hint}")
    if box.queries != len(x):
        msgs.append(f"You spent {box.queries} queries for {len(x)} images: query the whole batch once.")
    elif box.calls != 1:
        msgs.append(f"Right count, but in {box.calls} box calls: the task is one batched call, box(x), for all "
                    f"{len(x)} images (a loop over images is slow on a real teacher).")
    if msgs:
        return ExerciseResult(NAME, False, True, msgs).report()
    return ExerciseResult(NAME, True, True, [f"{truth:.1%} in exactly {box.queries} queries, one call."]).report()
