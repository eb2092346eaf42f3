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

from labkit.teaching.exercises import ExerciseResult, kind_to_learners, not_attempted

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
        if (got < boundary - 1e-12).any():
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


@kind_to_learners(SOFT_NAME)
def check_distance_soft_labels(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor | None]
                               ) -> ExerciseResult:
    """Notebook 03's exercise: check ``fn(distances, y, tau)`` against DB3KD's soft label.

    ``distances`` is ``(N, C)`` with ``inf`` for the sample's own class and for classes never reached;
    the answer is ``softmax(z/τ)`` with ``z_t = 1/d_t`` (0 where ``d_t`` is inf) and ``z_y = Σ_{t≠y} 1/d_t``.
    """
    from labkit.synthesis.boundary import distance_soft_labels

    g = torch.Generator().manual_seed(1)
    msgs: list[str] = []
    for n, c, tau in ((6, 4, 1.0), (10, 10, 20.0)):
        d = torch.rand(n, c, generator=g, dtype=torch.float64) * 5 + 0.2
        y = torch.randint(0, c, (n,), generator=g)
        d[torch.arange(n), y] = math.inf
        d[0, (int(y[0]) + 1) % c] = math.inf  # one class never reached
        got = fn(d.clone(), y.clone(), tau)
        if got is None:
            return not_attempted(SOFT_NAME)
        want = distance_soft_labels(d, y, tau)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return ExerciseResult(SOFT_NAME, False, True, [f"Return an (N, C) = {tuple(want.shape)} tensor."]).report()
        got = got.float()
        if not torch.isfinite(got).all():
            msgs.append("NaN or inf in the answer: treat 1/inf as 0 (torch.where(torch.isfinite(d), 1 / d, 0)).")
        elif not torch.allclose(got.sum(1), torch.ones(n), atol=1e-4):
            msgs.append("Each row must sum to 1: finish with a softmax over classes (dim=1).")
        elif not (got.argmax(1) == y).all():
            msgs.append("The sample's own class must get z_y = Σ_{t≠y} 1/d_t, the largest score.")
        elif not torch.allclose(got, want, atol=1e-4):
            msgs.append(f"τ = {tau:g}: close but not equal; divide z by τ before the softmax.")
        if msgs:
            return ExerciseResult(SOFT_NAME, False, True, msgs).report()
    return ExerciseResult(SOFT_NAME, True, True, ["Matches labkit.synthesis.boundary.distance_soft_labels."]).report()
