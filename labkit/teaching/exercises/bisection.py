"""Notebook 02's exercise: write batched bisection along rays.

The learner writes ``bisect(is_hit, lo, hi, tol)``:

* ``lo``, ``hi``: float64 tensors ``(R,)``, one bracket per ray; ``lo`` misses and ``hi`` hits;
* ``is_hit(lam)``: asks the teacher at ``x0 + lam·θ`` for *all* rays at once and returns a bool
  tensor ``(R,)`` (True where the label has changed); every call costs ``R`` queries;
* return the final ``hi`` (the hit side), with ``hi − lo ≤ tol`` for every ray.

The checker plants a hidden boundary on every ray, counts the calls, and compares
with ``⌈log₂((hi − lo)/tol)⌉`` (the fewest calls bisection can need).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from labkit.teaching.exercises import ExerciseResult, Slip, diagnose, kind_to_learners, not_attempted, same_answer

NAME = "bisection"

Bisect = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor, float], torch.Tensor | None]


def reference_bisect(is_hit: Callable[[torch.Tensor], torch.Tensor], lo: torch.Tensor, hi: torch.Tensor,
                     tol: float) -> torch.Tensor:
    """Labkit's answer: halve every bracket until it is ≤ ``tol``; keep the hit side."""
    lo, hi = lo.clone(), hi.clone()
    while bool(((hi - lo) > tol).any()):
        mid = (lo + hi) / 2
        hit = is_hit(mid)
        hi = torch.where(hit, mid, hi)
        lo = torch.where(hit, lo, mid)
    return hi


@kind_to_learners(NAME)
def check_bisect(fn: Bisect) -> ExerciseResult:
    """Check ``fn(is_hit, lo, hi, tol)`` on hidden boundaries: tolerance, hit side, number of calls."""
    g = torch.Generator().manual_seed(0)
    msgs: list[str] = []
    for rays, scale, tol in ((8, 1.0, 1e-3), (64, 5.0, 1e-4), (5, 0.2, 1e-6)):
        boundary = (torch.rand(rays, generator=g, dtype=torch.float64) * 0.9 + 0.05) * scale
        calls = {"n": 0}

        def is_hit(lam: torch.Tensor, boundary: torch.Tensor = boundary, calls: dict = calls) -> torch.Tensor:
            if not isinstance(lam, torch.Tensor) or lam.shape != boundary.shape:
                raise ValueError(f"is_hit expects one λ per ray, a tensor of shape {tuple(boundary.shape)}")
            calls["n"] += 1
            return lam >= boundary

        lo = torch.zeros(rays, dtype=torch.float64)
        hi = torch.full((rays,), scale, dtype=torch.float64)
        try:
            got = fn(is_hit, lo.clone(), hi.clone(), tol)
        except ValueError as exc:
            return ExerciseResult(NAME, False, True, [str(exc)]).report()
        if got is None:
            return not_attempted(NAME)
        if not isinstance(got, torch.Tensor) or got.shape != boundary.shape:
            hint = f"Return one λ per ray: a tensor of shape {tuple(boundary.shape)}."
            return ExerciseResult(NAME, False, True, [hint]).report()
        got = got.double()
        best = math.ceil(math.log2(scale / tol))
        far = (got - boundary).abs() > tol + 1e-12
        at_an_end = (got <= tol) | (got >= scale - tol)
        if bool(far.any()) and bool(at_an_end[far].all()):
            msgs.append(f"{int(far.sum())} ray(s) ended at an end of the bracket, far from the boundary: the updates "
                        "are swapped. Where is_hit(mid) is True the label has changed, so the boundary lies below "
                        "mid: set hi = mid there, and lo = mid where it is False.")
        elif (got < boundary - 1e-12).any():
            msgs.append(f"{int((got < boundary - 1e-12).sum())} ray(s) ended before the boundary: return the *hit* "
                        "side (hi), where the label has already changed.")
        elif ((got - boundary) > tol + 1e-12).any():
            msgs.append(f"Some rays are more than tol = {tol:g} past the boundary: keep halving until hi − lo ≤ tol.")
        if calls["n"] > best + 1:
            msgs.append(f"{calls['n']} calls of is_hit for range {scale:g} and tol {tol:g}; bisection needs only "
                        f"⌈log₂(range/tol)⌉ = {best}. Query all rays together and halve every bracket each call.")
        if msgs:
            return ExerciseResult(NAME, False, True, msgs).report()
    return ExerciseResult(NAME, True, True, ["Within tolerance, on the hit side, in ⌈log₂(range/tol)⌉ batched calls."]
                          ).report()


# ---------------------------------------------------------------------------------------------- notebook 03
SOFT_NAME = "DB3KD soft labels"


def _scores(distances: torch.Tensor, y: torch.Tensor, inverse: bool = True, own: str = "sum") -> torch.Tensor:
    """z of a soft-label slip: ``1/d`` (or ``d``) with inf → 0, and the own class's score as ``own`` says."""
    finite = torch.isfinite(distances)
    z = torch.where(finite, 1.0 / distances if inverse else distances, torch.zeros_like(distances))
    rows = torch.arange(len(y))
    if own == "sum":
        z[rows, y] = z.sum(1)
    elif own == "max":
        z[rows, y] = z.max(1).values
    return z


def _soft_label_slips() -> list[Slip]:
    """The soft label's typical wrong answers, each with the advice that names it (tests/test_checker_messages.py)."""
    sm = torch.softmax
    return [
        Slip("Your scores grow with the distance d: use z_t = 1/d_t, so that a near boundary (small d) gives a large "
             "score (and z_y = Σ_{t≠y} 1/d_t).",
             lambda d, y, tau: sm(_scores(d, y, inverse=False) / tau, 1)),
        Slip("NaN in every row: the infinite distances reached the softmax. Use z_t = 1/d_t, which is 0 where d_t "
             "is inf (torch.where(torch.isfinite(d), 1 / d, 0)), not d itself.",
             lambda d, y, tau: torch.full(d.shape, math.nan, dtype=torch.float64)),
        Slip("Divide z by τ before the softmax: softmax(z / τ).", lambda d, y, tau: sm(_scores(d, y), 1)),
        Slip("Divide z by τ, do not multiply: softmax(z / τ).", lambda d, y, tau: sm(_scores(d, y) * tau, 1)),
        Slip("The own class's score is missing: set z_y = Σ_{t≠y} 1/d_t, the largest score.",
             lambda d, y, tau: sm(_scores(d, y, own="none") / tau, 1)),
        Slip("z_y is the sum Σ_{t≠y} 1/d_t over the other classes, not their largest 1/d_t.",
             lambda d, y, tau: sm(_scores(d, y, own="max") / tau, 1)),
        Slip("Take the softmax over the classes (dim=1), not over the batch (dim=0).",
             lambda d, y, tau: sm(_scores(d, y) / tau, 0)),
        Slip("Return probabilities: finish with softmax(z / τ, dim=1), not log_softmax.",
             lambda d, y, tau: torch.log_softmax(_scores(d, y) / tau, 1)),
        Slip("Finish with a softmax: you returned the scores z / τ themselves.", lambda d, y, tau: _scores(d, y) / tau),
        Slip("Turn the scores into probabilities with a softmax, exp(z/τ) / Σ exp(z/τ), not by dividing z by its "
             "sum.", lambda d, y, tau: _scores(d, y) / _scores(d, y).sum(1, keepdim=True)),
    ]


@kind_to_learners(SOFT_NAME)
def check_distance_soft_labels(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor | None]
                               ) -> ExerciseResult:
    """Notebook 03's exercise: check ``fn(distances, y, tau)`` against DB3KD's soft label.

    ``distances`` is ``(N, C)`` with ``inf`` for the sample's own class and for classes never reached;
    the answer is ``softmax(z/τ)`` with ``z_t = 1/d_t`` (0 where ``d_t`` is inf) and ``z_y = Σ_{t≠y} 1/d_t``.
    """
    from labkit.synthesis.boundary import distance_soft_labels

    g = torch.Generator().manual_seed(1)
    cases, answers = [], []
    for n, c, tau in ((6, 4, 1.0), (10, 10, 20.0)):
        d = torch.rand(n, c, generator=g, dtype=torch.float64) * 5 + 0.2
        y = torch.randint(0, c, (n,), generator=g)
        d[torch.arange(n), y] = math.inf
        d[0, (int(y[0]) + 1) % c] = math.inf  # one class never reached
        got = fn(d.clone(), y.clone(), tau)
        if got is None:
            return not_attempted(SOFT_NAME)
        want_shape = (n, c)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != want_shape:
            return ExerciseResult(SOFT_NAME, False, True, [f"Return an (N, C) = {want_shape} tensor."]).report()
        cases.append((d, y, tau))
        answers.append(got.detach().double())
    wants = [distance_soft_labels(d, y, tau) for d, y, tau in cases]
    fallback = ("NaN or inf in the answer: treat 1/inf as 0 (torch.where(torch.isfinite(d), 1 / d, 0))."
                if not all(bool(torch.isfinite(a).all()) for a in answers) else
                "Check each step: z_t = 1/d_t (0 where d_t is inf), z_y = Σ_{t≠y} 1/d_t, then softmax(z / τ, dim=1)."
                if all(bool(torch.isfinite(a).all()) and bool((a.argmax(1) == y).all()) for a, (_, y, _) in
                       zip(answers, cases)) else
                "Each row must be a probability vector (non-negative, summing to 1) whose largest entry is the "
                "image's own class y: z_t = 1/d_t (0 where d_t is inf), z_y = Σ_{t≠y} 1/d_t, softmax(z / τ, dim=1).")
    verdict = diagnose(SOFT_NAME, [f"τ = {tau:g}" for *_, tau in cases], cases, answers, wants, _soft_label_slips(),
                       fallback, same=lambda got, want: same_answer(got, want, rtol=1e-4, atol=1e-4))
    if verdict is not None:
        return verdict
    return ExerciseResult(SOFT_NAME, True, True, ["Matches labkit.synthesis.boundary.distance_soft_labels."]).report()
