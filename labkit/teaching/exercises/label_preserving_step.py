"""Notebook 05's exercise: the label-preserving step away from the nearest boundary (ZSDB3KD step 2)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted, same_answer

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


def _step(sign: float = -1.0, proposals: Callable[[int], int] = lambda h: h + 1, keep_failed: bool = False) -> StepFn:
    """A label-preserving step with one of the typical slips (an unclipped proposal makes the box itself refuse the
    query, so it needs no slip here): the direction's sign, how many proposals
    ``max_halvings`` allows (``proposals(max_halvings)``), and whether a last failed proposal is kept."""
    def answer(box: BlackBox, x: torch.Tensor, y: torch.Tensor, direction: torch.Tensor, step_size: float,
               max_halvings: int) -> torch.Tensor:
        lam = torch.full((x.shape[0], 1), float(step_size))
        out = x.clone()
        todo = direction.reshape(x.shape[0], -1).abs().sum(1) > 0
        for _ in range(proposals(max_halvings)):
            if not bool(todo.any()):
                break
            idx = todo.nonzero().squeeze(1)
            proposal = (x[idx] + sign * lam[idx] * direction[idx]).clamp(0, 1)
            same = box(proposal) == y[idx]
            out[idx[same | keep_failed]] = proposal[same | keep_failed]
            todo[idx[same]] = False
            lam[idx[~same]] /= 2
        return out

    return answer


def _slips() -> list[Slip]:
    """The step's typical wrong answers, each with the advice that names it."""
    return [
        Slip("Your images move *toward* the boundary: θ* points at it, so step with x − λ·θ*.", _step(sign=1.0)),
        Slip("An image whose every proposal changes its class stays where it is: keep a proposal only where the box "
             "still answers y.", _step(keep_failed=True)),
        Slip("No halving: where the label changed, halve that image's λ and propose it again, up to max_halvings "
             "times.", _step(proposals=lambda h: 1)),
        Slip("One halving short: max_halvings halvings mean max_halvings + 1 proposals (λ, λ/2, …, "
             "λ/2^max_halvings).", _step(proposals=lambda h: h)),
        Slip("Stop after max_halvings halvings: max_halvings + 1 proposals in all (λ, λ/2, …, λ/2^max_halvings), "
             "then leave the image where it is.", _step(proposals=lambda h: h + 3)),
        Slip("Stop after max_halvings halvings: max_halvings + 1 proposals in all, then leave the image where it "
             "is.", _step(proposals=lambda h: 60)),
    ]


@kind_to_learners(NAME)
def check_label_preserving_step(fn: StepFn) -> ExerciseResult:
    """Check ``fn(box, x, y, direction, step_size, max_halvings)`` → new images against labkit's step.

    The step is ``clip(x − λ·θ*, 0, 1)``; where the teacher's label would change, that image's
    λ is halved and it is proposed again (at most ``max_halvings`` times); an image that never
    passes, or whose direction is zero, stays where it is.
    """
    from labkit.synthesis.pseudo_samples import label_preserving_step

    cases, answers, wants = [], [], []
    # 0.6 with no halving: every image in the middle band (0.3 wide) fails its one proposal and must stay put
    for step_size, halvings in ((0.5, 5), (0.3, 1), (0.6, 0)):
        box, x, y, direction = exercise_case()
        got = fn(box, x.clone(), y.clone(), direction.clone(), step_size, halvings)
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(x.shape):
            return ExerciseResult(NAME, False, True, [f"Return the new images, a tensor of shape {tuple(x.shape)}."]
                                  ).report()
        cases.append((box, x, y, direction, step_size, halvings))
        answers.append(got.detach().float())
        wants.append(label_preserving_step(box, x, y, direction, step_size, halvings).images)

    def shown(got: torch.Tensor, want: torch.Tensor) -> str:
        with torch.no_grad():
            changed = int((BandClassifier()(got).argmax(1) != BandClassifier()(want).argmax(1)).sum())
        differ = int((~torch.isclose(got, want, atol=1e-6).all(1)).sum())
        return f"{changed} image(s) changed class" if changed else f"{differ} image(s) differ from the reference"

    verdict = diagnose(NAME, [f"λ = {step:g}, {h} halving(s)" for *_, step, h in cases], cases, answers, wants,
                       _slips(), "Halve λ only for the images whose label changed, propose again, and leave an image "
                       "in place once its halvings are used up (or when its direction is zero).", shown=shown,
                       same=lambda got, want: same_answer(got, want, rtol=0.0, atol=1e-6))
    if verdict is not None:
        return verdict
    return ExerciseResult(NAME, True, True, ["Every image kept its class, and the halving matches labkit."]).report()
