"""Notebook 05's exercise: the label-preserving step away from the nearest boundary (ZSDB3KD step 2)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.teaching.exercises import ExerciseResult, not_attempted

NAME = "label-preserving step"

StepFn = Callable[[BlackBox, torch.Tensor, torch.Tensor, torch.Tensor, float, int], "torch.Tensor | None"]


class BandClassifier(nn.Module):
    """A toy 2-D teacher whose classes are vertical bands: the class is decided by the first coordinate.

    Class 0 for ``x₀ < 0.275``, class 1 up to ``0.575``, class 2 beyond (nearest of the centres
    0.15, 0.40, 0.75). A step that is too long jumps *over* class 1's band into class 2, which is
    exactly the case the halving rule is for.
    """

    centres: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor([0.15, 0.40, 0.75]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x[:, :1] - self.centres.view(1, -1)).abs()


def exercise_case() -> tuple[BlackBox, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A decision box on :class:`BandClassifier`, points, their classes and unit directions toward their nearest
    boundary (horizontal, since the boundaries are vertical lines)."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(64, 2, generator=g) * 0.9 + 0.05
    model = BandClassifier()
    box = BlackBox(model, access="decision", input_shape=(2,), num_classes=3)
    y = model(x).argmax(1)
    bounds = torch.tensor([0.275, 0.575])
    gap = x[:, :1] - bounds.view(1, -1)  # signed distance to each boundary line
    nearest = gap.abs().argmin(1)
    sign = -torch.sign(gap.gather(1, nearest.view(-1, 1))).squeeze(1)  # toward the boundary
    direction = torch.zeros_like(x)
    direction[:, 0] = sign
    direction[:3] = 0.0  # three points "found no boundary": they must stay where they are
    return box, x, y, direction


def check_label_preserving_step(fn: StepFn) -> ExerciseResult:
    """Check ``fn(box, x, y, direction, step_size, max_halvings)`` → new images against labkit's step.

    The step is ``clip(x − λ·θ*, 0, 1)``; where the teacher's label would change, that image's
    λ is halved and it is proposed again (at most ``max_halvings`` times); an image that never
    passes, or whose direction is zero, stays where it is.
    """
    from labkit.synthesis.pseudo_samples import label_preserving_step

    msgs: list[str] = []
    for step_size, halvings in ((0.5, 5), (0.3, 1)):
        box, x, y, direction = exercise_case()
        try:
            got = fn(box, x.clone(), y.clone(), direction.clone(), step_size, halvings)
        except Exception as exc:  # noqa: BLE001 - report the learner's error kindly
            return ExerciseResult(NAME, False, True, [f"Your function raised {type(exc).__name__}: {exc}"]).report()
        if got is None:
            return not_attempted(NAME)
        ref_box, *_ = exercise_case()
        want = label_preserving_step(ref_box, x, y, direction, step_size, halvings).images
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(x.shape):
            return ExerciseResult(NAME, False, True, [f"Return the new images, a tensor of shape {tuple(x.shape)}."]
                                  ).report()
        with torch.no_grad():
            labels = BandClassifier()(got.float()).argmax(1)
        if not bool((labels == y).all()):
            msgs.append(f"λ={step_size}: {int((labels != y).sum())} image(s) changed class. Check each proposal with "
                        "the box and keep only those whose label stays the same.")
        if not torch.allclose(got.float(), want, atol=1e-6):
            toward = (x + step_size * direction).clamp(0, 1)
            if torch.allclose(got.float()[3:], toward[3:], atol=1e-6) or \
                    float((got.float() - x)[:, 0].mul(direction[:, 0]).sum()) > 0:
                msgs.append("Your images move *toward* the boundary: θ* points at it, so step with x − λ·θ*.")
            elif got.float().min() < 0 or got.float().max() > 1:
                msgs.append("Clip the proposals to [0, 1].")
            else:
                bad = int((~torch.isclose(got.float(), want, atol=1e-6).all(1)).sum())
                msgs.append(f"λ={step_size}, {halvings} halving(s): {bad} image(s) differ from the reference. Halve λ "
                            "only for the images whose label changed, propose again, and leave an image in place "
                            "once its halvings are used up (or when its direction is zero).")
        if msgs:
            return ExerciseResult(NAME, False, True, msgs).report()
    return ExerciseResult(NAME, True, True, ["Every image kept its class, and the halving matches labkit."]).report()
