"""Decision-boundary search through a decision-only :class:`~labkit.core.blackbox.BlackBox`.

DB3KD (and ZSDB3KD) turn *distances to the teacher's decision boundaries* into
soft labels. This module finds those distances using nothing but top-1 class
ids. Everything is batched over samples × directions in tensors: a "ray" is one
(sample, direction) pair, every step of every search sends all active rays to the
box in one call, and the number of images sent (the query count) is exact and
reported per sample.

A ray starts at a sample ``x0`` (teacher class ``y0``) and walks along a unit
direction ``θ``; the point at parameter ``λ`` is ``clamp(x0 + λ·θ, 0, 1)``. The
ray *hits* at ``λ`` when the teacher's answer there is ``target`` (targeted) or
any class other than ``y0`` (untargeted). Distances are the ray parameter λ of
the hit-side end of the final bracket, so the boundary lies in ``(λ − tol, λ]``
and the point at ``λ`` is a verified boundary point on the far side.

Public API (stable; ZSDB3KD reuses :func:`nearest_boundary`):

=============================== ================================================================
:func:`bisect_boundary`          bisection along given directions (samples × directions)
:func:`sample_distance`          SD: distance to the nearest of a few class-t samples; no queries
:func:`boundary_distance`        BD: rays toward class-t samples, with the pruning query
:func:`minimal_boundary_distance` MBD: Sign-OPT started from the BD solution, budget per pair
:func:`sign_opt`                 Sign-OPT refinement of given rays (targeted or untargeted)
:class:`SignOptRule`             the lab's Sign-OPT rule or the authors' (:data:`AUTHORS_SIGNOPT`)
:func:`nearest_boundary`         untargeted nearest-boundary search: random rays + Sign-OPT
:func:`class_candidates`         for each sample and class, the nearest (or random) pool samples of that class
:func:`distance_soft_labels`     DB3KD soft labels from distances
=============================== ================================================================

Query efficiency: a bisection to absolute tolerance ``tol`` over a range ``r``
costs exactly ``⌈log₂(r/tol)⌉`` queries (plus one to check the far end when it
is not known to hit). A relative tolerance ``rtol`` stops when the bracket is
below ``rtol·λ``; ``2⁻⁷`` (< 1 %) is plenty for soft labels. Directions toward
samples the teacher already labelled ``t`` need no check query at all.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from labkit.core.errors import InvalidQueryError

Box = Callable[[torch.Tensor], torch.Tensor]

#: default relative tolerance of the bisections (2⁻⁷ ≈ 0.8 %)
DEFAULT_RTOL = 2.0 ** -7
#: float32 values one box call may hold (1 GiB): a call carries every active ray at once, split only by this
CALL_VALUES = 2 ** 28
#: ``chunk=None`` (the default everywhere) means "as many rays per call as :data:`CALL_VALUES` allows"
DEFAULT_CHUNK: int | None = None


# ---------------------------------------------------------------------------------------------- results
@dataclass
class RaySearch:
    """Result of :func:`bisect_boundary`, one entry per (sample, direction) ray.

    ``distance``: λ at the hit side of the final bracket (``inf`` where the ray never hit);
    ``lower``: the largest λ known *not* to hit; ``label``: the teacher's class at ``distance``
    (−1 where none); ``queries``: images queried for this ray.
    """

    distance: torch.Tensor
    lower: torch.Tensor
    label: torch.Tensor
    queries: torch.Tensor

    @property
    def found(self) -> torch.Tensor:
        """Rays that reached a label change."""
        return torch.isfinite(self.distance)

    @property
    def total_queries(self) -> int:
        """All images this search sent to the box."""
        return int(self.queries.sum())


@dataclass
class BoundaryDistances:
    """Distances from each sample to each class (SD, BD or MBD).

    ``distance`` is ``(N, C)``; the sample's own class and unreachable classes are ``inf``.
    ``queries`` is ``(N,)``, the images sent for each sample (0 for SD). ``direction``
    (``(N, C, *shape)`` unit rays, only if asked for) and ``start_distance`` (MBD: the BD
    distances it started from) may be ``None``.
    """

    distance: torch.Tensor
    queries: torch.Tensor
    measure: str
    direction: torch.Tensor | None = None
    start_distance: torch.Tensor | None = None

    @property
    def total_queries(self) -> int:
        """All images sent to the box."""
        return int(self.queries.sum())

    def boundary_points(self, x: torch.Tensor) -> torch.Tensor:
        """``clamp(x + d·θ, 0, 1)`` for every (sample, class) with a direction; ``(N, C, *shape)``."""
        if self.direction is None:
            raise ValueError("no directions were kept; pass keep_directions=True")
        d = torch.nan_to_num(self.distance, posinf=0.0).to(x.dtype)
        shape = (x.shape[0], self.distance.shape[1]) + (1,) * (x.dim() - 1)
        return (x.unsqueeze(1) + d.view(shape) * self.direction).clamp(0, 1)


@dataclass
class NearestBoundary:
    """Result of :func:`nearest_boundary`: distance ``g`` ``(N,)``, unit direction ``θ*`` ``(N, *shape)``,
    the class found across the boundary ``(N,)`` (−1: none) and queries per sample ``(N,)``."""

    distance: torch.Tensor
    direction: torch.Tensor
    label: torch.Tensor
    queries: torch.Tensor

    @property
    def total_queries(self) -> int:
        """All images sent to the box."""
        return int(self.queries.sum())


# ---------------------------------------------------------------------------------------------- helpers
def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def rays_per_call(numel: int, chunk: int | None = None) -> int:
    """Rays sent to the box in one call: ``chunk`` if given, else as many as :data:`CALL_VALUES` allows for
    inputs of ``numel`` values. The number of calls of a search step then depends on memory only."""
    return int(chunk) if chunk is not None else max(1, CALL_VALUES // max(1, int(numel)))


def _answers_along_rays(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], owner: torch.Tensor,
                        theta: torch.Tensor, lam: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """Teacher class ids at ``clamp(x0[owner] + λ·θ, 0, 1)``: one box call for all rays (split only by memory)."""
    step = rays_per_call(x0f.shape[1], chunk)
    answers = []
    for s in range(0, owner.numel(), step):
        o, th, la = owner[s:s + step], theta[s:s + step], lam[s:s + step]
        pts = (x0f[o] + la.to(x0f.dtype).unsqueeze(1) * th).clamp_(0.0, 1.0)
        out = box(pts.view((-1,) + shape))
        if not isinstance(out, torch.Tensor) or out.dtype != torch.int64 or out.dim() != 1:
            raise InvalidQueryError(
                "Boundary search needs a decision box that answers int64 class ids (shape (N,)); got "
                f"{getattr(out, 'dtype', type(out).__name__)} of shape {tuple(getattr(out, 'shape', ()))}. "
                "Build it with BlackBox(model, access='decision').")
        answers.append(out.to(owner.device))
    return answers[0] if len(answers) == 1 else torch.cat(answers)


def _active(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the rays still searching. This is the one host sync of a search step: the size of the next
    box call must be known to count its queries (and check the budget) before anything is answered."""
    return mask.nonzero().squeeze(1)


def _hit(answer: torch.Tensor, y0: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    return answer != y0 if target is None else answer == target


def _as_ray_tensor(v: float | torch.Tensor, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.to(device=device, dtype=dtype).reshape(-1).expand(n).clone() if v.numel() == 1 \
            else v.to(device=device, dtype=dtype).reshape(-1).clone()
    return torch.full((n,), float(v), device=device, dtype=dtype)


def _narrow(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], owner: torch.Tensor, theta: torch.Tensor,
            y0: torch.Tensor, target: torch.Tensor | None, idx: torch.Tensor, trial: torch.Tensor, lo: torch.Tensor,
            hi: torch.Tensor, label: torch.Tensor, queries: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """Ask the rays ``idx`` at ``trial`` (one query each, one box call) and move their bracket there: ``hi`` where
    the answer hits (its class kept in ``label``), ``lo`` where it misses. Updates in place; returns the hits."""
    ans = _answers_along_rays(box, x0f, shape, owner[idx], theta[idx], trial, chunk)
    queries[idx] += 1
    hit = _hit(ans, y0[idx], None if target is None else target[idx])
    hi[idx] = torch.where(hit, trial, hi[idx])
    lo[idx] = torch.where(hit, lo[idx], trial)
    label[idx] = torch.where(hit, ans, label[idx])
    return hit


def _bisect_rays(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], owner: torch.Tensor, theta: torch.Tensor,
                 y0: torch.Tensor, target: torch.Tensor | None, lo: torch.Tensor, hi: torch.Tensor,
                 known: torch.Tensor, tol: torch.Tensor, rtol: float, max_queries: torch.Tensor,
                 chunk: int | None) -> RaySearch:
    """Bisection on flat rays (``owner[r]`` is the sample of ray r). λ is kept in float64."""
    n = owner.numel()
    dev = owner.device
    lo, hi = lo.double().clone(), hi.double().clone()
    queries = torch.zeros(n, dtype=torch.int64, device=dev)
    label = torch.full((n,), -1, dtype=torch.int64, device=dev)
    if target is not None:
        label = torch.where(known, target, label)
    found = known.clone()
    idx = _active(~known & (max_queries >= 1) & (hi > lo))
    if idx.numel():
        ans = _answers_along_rays(box, x0f, shape, owner[idx], theta[idx], hi[idx], chunk)
        queries[idx] += 1
        hit = _hit(ans, y0[idx], None if target is None else target[idx])
        found[idx] = hit
        label[idx] = torch.where(hit, ans, label[idx])
    while True:
        width = hi - lo
        # float64 floor (2⁻⁴⁰·λ): with tol = rtol = 0 the loop still ends after ~40 steps
        idx = _active(found & (queries < max_queries) & (width > torch.maximum(tol, hi * max(rtol, 2.0 ** -40))))
        if idx.numel() == 0:
            break
        _narrow(box, x0f, shape, owner, theta, y0, target, idx, (lo[idx] + hi[idx]) * 0.5, lo, hi, label, queries,
                chunk)
    inf = torch.full_like(hi, math.inf)
    return RaySearch(torch.where(found, hi, inf), lo, label, queries)


@dataclass
class _Rays:
    """A group of flat rays for :func:`_bisect_rays` (``owner[r]``: the sample of ray r; ``target`` None: any class)."""

    owner: torch.Tensor
    theta: torch.Tensor
    y0: torch.Tensor
    target: torch.Tensor | None
    lo: torch.Tensor
    hi: torch.Tensor
    known: torch.Tensor
    tol: torch.Tensor
    max_queries: torch.Tensor


def _bisect_together(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], groups: list[_Rays], rtol: float,
                     chunk: int | None) -> list[RaySearch]:
    """Bisect independent groups of rays in the same box calls (every ray's search is unchanged) and split
    the results back per group."""
    if len({g.target is None for g in groups}) > 1:
        raise ValueError("rays bisected together must all be targeted or all untargeted")
    cat = {name: torch.cat([getattr(g, name) for g in groups]) for name in
           ("owner", "theta", "y0", "lo", "hi", "known", "tol", "max_queries")}
    target = None if groups[0].target is None else torch.cat([g.target for g in groups])  # type: ignore[misc]
    res = _bisect_rays(box, x0f, shape, cat["owner"], cat["theta"], cat["y0"], target, cat["lo"], cat["hi"],
                       cat["known"], cat["tol"], rtol, cat["max_queries"], chunk)
    sizes = [g.owner.numel() for g in groups]
    parts = [res.distance.split(sizes), res.lower.split(sizes), res.label.split(sizes), res.queries.split(sizes)]
    return [RaySearch(*fields) for fields in zip(*parts)]


# ---------------------------------------------------------------------------------------------- bisection
def bisect_boundary(box: Box, x0: torch.Tensor, directions: torch.Tensor, y0: torch.Tensor,
                    target: int | torch.Tensor | None = None, lo: float | torch.Tensor = 0.0,
                    hi: float | torch.Tensor = 1.0, tol: float | torch.Tensor = 1e-3, *, rtol: float = 0.0,
                    hi_known: bool | torch.Tensor = False, max_queries: int | torch.Tensor | None = None,
                    chunk: int | None = DEFAULT_CHUNK) -> RaySearch:
    """Find, along every (sample, direction) ray, where the teacher's label changes.

    ``x0``: ``(N, *shape)`` samples; ``directions``: ``(N, D, *shape)`` (normalised here);
    ``y0``: ``(N,)`` the teacher's class at each sample. ``target`` (an int, ``(N,)`` or
    ``(N, D)``) makes a ray hit only on that class; ``None`` means any class ≠ ``y0``.
    ``lo``/``hi``/``tol`` are floats or ``(N, D)`` tensors; the label at ``lo`` is taken as a
    miss. The far end ``hi`` is checked with one query unless ``hi_known`` says it hits.
    Bisection then halves ``[lo, hi]`` until it is ≤ ``tol`` (or ≤ ``rtol·λ``), so a ray costs
    at most ``⌈log₂((hi − lo)/tol)⌉ + 1`` queries, or ``max_queries`` if that is smaller.
    Returns a :class:`RaySearch` of ``(N, D)`` tensors.
    """
    if directions.dim() < 2 or directions.shape[0] != x0.shape[0]:
        raise ValueError(f"directions must be (N, D, *shape) with N = {x0.shape[0]}, got {tuple(directions.shape)}")
    n, d = directions.shape[0], directions.shape[1]
    shape = tuple(x0.shape[1:])
    dev = x0.device
    x0f = _flat(x0)
    theta = _unit(directions.reshape(n * d, -1).to(x0f.dtype))
    if theta.shape[1] != x0f.shape[1]:
        raise ValueError(f"each direction must have {x0f.shape[1]} values like a sample, got {theta.shape[1]}")
    owner = torch.arange(n, device=dev).repeat_interleave(d)
    y_ray = y0.to(dev).long()[owner]
    tgt = None
    if target is not None:
        t = torch.as_tensor(target, device=dev).long()
        if t.dim() == 0:
            tgt = t.expand(n * d).clone()
        elif tuple(t.shape) == (n,):
            tgt = t.repeat_interleave(d)
        elif tuple(t.shape) == (n, d):
            tgt = t.reshape(-1)
        else:
            raise ValueError(f"target must be an int, (N,) = ({n},) or (N, D) = ({n}, {d}); got {tuple(t.shape)}")
    r = n * d
    known = hi_known.to(dev).reshape(-1).expand(r).clone() if isinstance(hi_known, torch.Tensor) \
        else torch.full((r,), bool(hi_known), device=dev)
    mq = torch.full((r,), 2 ** 62, dtype=torch.int64, device=dev) if max_queries is None \
        else _as_ray_tensor(max_queries, r, dev, torch.int64)
    res = _bisect_rays(box, x0f, shape, owner, theta, y_ray, tgt, _as_ray_tensor(lo, r, dev, torch.float64),
                       _as_ray_tensor(hi, r, dev, torch.float64), known, _as_ray_tensor(tol, r, dev, torch.float64),
                       rtol, mq, chunk)
    return RaySearch(res.distance.view(n, d), res.lower.view(n, d), res.label.view(n, d), res.queries.view(n, d))


def bisection_query_bound(search_range: float, tol: float, check: bool = True) -> int:
    """The most queries :func:`bisect_boundary` spends on one ray: ``⌈log₂(range/tol)⌉`` (+1 for the check)."""
    return max(0, math.ceil(math.log2(search_range / tol))) + int(check)


# ---------------------------------------------------------------------------------------------- pruned search
def _pruned_rounds(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], owner: torch.Tensor,
                   direction_of: Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]], rounds: int,
                   y0: torch.Tensor, target: torch.Tensor | None, rtol: float, budget: torch.Tensor,
                   chunk: int | None, side: _Rays | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, RaySearch | None]:
    """Search ``rounds`` directions per pair, one round at a time, pruning with the best distance so far.

    ``direction_of(k)`` gives the k-th ``(θ (R, P), radius (R,), hits_at_radius (R,) bool)`` for every
    pair. A round searches ``[0, min(radius, best)]``; when the radius exceeds the best distance,
    the first (check) query at ``best`` decides whether the direction can improve at all.
    ``side`` rays (independent of the rounds, e.g. a warm start) are bisected in the same calls as round 0.
    Returns best distance, best θ, label across the boundary and queries per pair, and the side search.
    """
    r = owner.numel()
    dev = owner.device
    best = torch.full((r,), math.inf, dtype=torch.float64, device=dev)
    best_theta = torch.zeros(r, x0f.shape[1], dtype=x0f.dtype, device=dev)
    best_label = torch.full((r,), -1, dtype=torch.int64, device=dev)
    spent = torch.zeros(r, dtype=torch.int64, device=dev)
    zero = torch.zeros(r, dtype=torch.float64, device=dev)
    side_result: RaySearch | None = None
    for k in range(rounds):
        theta, radius, hits = direction_of(k)
        radius = radius.double()
        ok = torch.isfinite(radius) & (radius > 0)
        hi = torch.minimum(radius, best)
        known = hits & (radius <= best) & ok
        left = budget - spent
        # a round is worth starting only if it can finish a check and a few bisection steps
        can = ok & (left >= torch.where(known, 1, 2)) & torch.isfinite(hi)
        idx = _active(can)
        rays = _Rays(owner[idx], theta[idx], y0[idx], None if target is None else target[idx], zero[idx], hi[idx],
                     known[idx], zero[idx], left[idx])
        if k == 0 and side is not None:
            res, side_result = _bisect_together(box, x0f, shape, [rays, side], rtol, chunk)
        elif idx.numel() == 0:
            if not bool((budget - spent >= 2).any()):  # only when a round had nothing to search
                break
            continue
        else:
            res = _bisect_rays(box, x0f, shape, rays.owner, rays.theta, rays.y0, rays.target, rays.lo, rays.hi,
                               rays.known, rays.tol, rtol, rays.max_queries, chunk)
        spent[idx] += res.queries
        # masked updates (torch.where), not boolean indexing: no host sync
        better = res.distance < best[idx]
        best[idx] = torch.where(better, res.distance, best[idx])
        best_theta[idx] = torch.where(better.unsqueeze(1), theta[idx], best_theta[idx])
        best_label[idx] = torch.where(better, res.label, best_label[idx])
    if side is not None and side_result is None:  # no round ran
        side_result = _bisect_together(box, x0f, shape, [side], rtol, chunk)[0]
    return best, best_theta, best_label, spent, side_result


def class_candidates(x: torch.Tensor, pool_x: torch.Tensor, pool_y: torch.Tensor, num_classes: int, k: int,
                     generator: torch.Generator | None = None, nearest: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """For every sample and class: ``k`` pool indices of that class (nearest first, or random) and their distances.

    Returns ``(index (N, C, k) int64, dist (N, C, k))``; missing entries have index −1 and distance inf.
    """
    n = x.shape[0]
    xf, pf = _flat(x), _flat(pool_x).to(x.dtype)
    idx_out = torch.full((n, num_classes, k), -1, dtype=torch.int64, device=x.device)
    dist_out = torch.full((n, num_classes, k), math.inf, dtype=x.dtype, device=x.device)
    for c in range(num_classes):
        members = (pool_y == c).nonzero().squeeze(1)
        if members.numel() == 0:
            continue
        dist = torch.cdist(xf, pf[members])  # (N, n_c)
        dist = torch.where(dist <= 1e-6, torch.full_like(dist, math.inf), dist)  # never the sample itself
        kk = min(k, members.numel())
        if nearest:
            d_sel, j = torch.topk(dist, kk, dim=1, largest=False)
        else:
            keys = torch.rand(dist.shape, generator=generator, device=dist.device)
            keys = torch.where(torch.isfinite(dist), keys, torch.full_like(keys, 2.0))
            j = torch.topk(keys, kk, dim=1, largest=False).indices
            d_sel = dist.gather(1, j)
            d_sel, order = d_sel.sort(dim=1)
            j = j.gather(1, order)
        valid = torch.isfinite(d_sel)
        idx_out[:, c, :kk] = torch.where(valid, members[j], torch.full_like(j, -1))
        dist_out[:, c, :kk] = d_sel
    return idx_out, dist_out


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(0 if seed is None else seed)
    return g


# ---------------------------------------------------------------------------------------------- SD / BD / MBD
def sample_distance(x: torch.Tensor, pool_x: torch.Tensor, pool_y: torch.Tensor, num_classes: int,
                    n_samples: int = 20, *, seed: int = 0, block: int = 2048) -> BoundaryDistances:
    """SD: for each class t, the distance to the nearest of ``n_samples`` random pool images of class t.

    No teacher queries. ``pool_y`` are the labels to trust (true or teacher labels). Own-class
    distances are computed too (soft labels ignore them). Returns a :class:`BoundaryDistances`.
    """
    gen = _generator(seed, x.device)
    out = []
    for s in range(0, x.shape[0], block):
        _, dist = class_candidates(x[s:s + block], pool_x, pool_y.to(x.device), num_classes, n_samples, gen,
                                    nearest=False)
        out.append(dist[:, :, 0])
    d = torch.cat(out).double()
    return BoundaryDistances(d, torch.zeros(x.shape[0], dtype=torch.int64, device=x.device), "sd")


def _pair_layout(y0: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (owner, target) for every (sample, other class) pair, ``N·(C−1)`` of them."""
    n = y0.shape[0]
    cls = torch.arange(num_classes, device=y0.device).expand(n, num_classes)
    mask = cls != y0.unsqueeze(1)
    owner = torch.arange(n, device=y0.device).unsqueeze(1).expand(n, num_classes)[mask]
    return owner, cls[mask]


def boundary_distance(box: Box, x: torch.Tensor, y0: torch.Tensor, pool_x: torch.Tensor, pool_y: torch.Tensor,
                      num_classes: int, n_directions: int = 20, *, queries_per_pair: int | None = None,
                      rtol: float = DEFAULT_RTOL, nearest: bool = True, seed: int = 0, keep_directions: bool = False,
                      block: int | None = None, chunk: int | None = DEFAULT_CHUNK) -> BoundaryDistances:
    """BD: for every sample and other class t, the nearest boundary to t along rays toward class-t pool images.

    ``y0`` are the teacher's classes of ``x``; ``pool_y`` must be the *teacher's* classes of
    ``pool_x`` (then the ray's far end is known to hit t and costs no query). Directions are taken
    nearest-first (``nearest=True``) or at random. The first direction is bisected; every later one
    whose image lies beyond the best distance gets one pruning query at that distance and is
    bisected on ``[0, best]`` only if the teacher already says t there. ``queries_per_pair`` caps
    the queries of each (sample, class) pair. Returns ``(N, C)`` distances.

    Every search step sends all (sample, class) pairs in one box call; ``block`` (default: as many samples
    as one call holds, :func:`rays_per_call`) splits the samples only where memory requires it.
    """
    dev = x.device
    n, c = x.shape[0], num_classes
    shape = tuple(x.shape[1:])
    gen = _generator(seed, dev)
    dist_all = torch.full((n, c), math.inf, dtype=torch.float64, device=dev)
    q_all = torch.zeros(n, dtype=torch.int64, device=dev)
    dir_all = torch.zeros((n, c) + shape, dtype=x.dtype, device=dev) if keep_directions else None
    pool_y = pool_y.to(dev)
    pf = _flat(pool_x).to(dev, x.dtype)
    block = block or max(1, rays_per_call(math.prod(shape), chunk) // max(1, c - 1))
    for s in range(0, n, block):
        xb, yb = x[s:s + block], y0[s:s + block].to(dev).long()
        xbf = _flat(xb)
        cand, cdist = class_candidates(xb, pool_x, pool_y, c, n_directions, gen, nearest)
        owner, target = _pair_layout(yb, c)
        cand_p, cdist_p = cand[owner, target], cdist[owner, target]  # (R, k)

        def direction_of(k: int, cand_p: torch.Tensor = cand_p, cdist_p: torch.Tensor = cdist_p,
                         owner: torch.Tensor = owner, xbf: torch.Tensor = xbf
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            j = cand_p[:, k]
            valid = j >= 0
            far = pf[j.clamp_min(0)]
            theta = _unit(far - xbf[owner])
            radius = torch.where(valid, cdist_p[:, k].double(), torch.full_like(cdist_p[:, k].double(), math.inf))
            return theta, radius, valid

        budget = torch.full((owner.numel(),), 2 ** 62 if queries_per_pair is None else int(queries_per_pair),
                            dtype=torch.int64, device=dev)
        best, theta, _, spent, _ = _pruned_rounds(box, xbf, shape, owner, direction_of, n_directions, yb[owner],
                                                  target, rtol, budget, chunk)
        dist_all[s + owner, target] = best
        q_all[s:s + block] += torch.zeros(xb.shape[0], dtype=torch.int64, device=dev).index_add_(0, owner, spent)
        if dir_all is not None:
            dir_all[s + owner, target] = theta.view((-1,) + shape)
    return BoundaryDistances(dist_all, q_all, "bd", dir_all)


@dataclass(frozen=True)
class SignOptRule:
    """How :func:`sign_opt` steps, measures a candidate and reacts to a stall: the lab's rule (the defaults) or the
    authors' code's (:data:`AUTHORS_SIGNOPT`); docs/methods/zsdb3kd.md compares them.

    ``line_search``: the step is ``α·ĝ`` with ``ĝ`` the *mean* of the signed probes (not normalised); α is doubled
    while the distance keeps shrinking (at most 15 tries; the next iteration starts from the last α tried), and if
    the first try fails α is quartered until a try succeeds (at most 15). Off: one normalised step ``α·ĝ/‖ĝ‖``, α
    doubled (capped at 1) after a success and quartered after a failure.
    ``stall_reset``: once α falls below 1e-4 it is reset to 1 and the probe radius β shrinks tenfold (the ray stops
    when β < 1e-8). Off: the ray stops.
    ``tol_beta_divisor``: a candidate that hits at the current distance is bracketed by steps of ×0.99 toward the
    sample, then bisected to an absolute tolerance of β / divisor. ``None``: it is bisected on ``[0, g]`` to the
    relative tolerance ``rtol``.
    """

    line_search: bool = False
    stall_reset: bool = False
    tol_beta_divisor: float | None = None

    @classmethod
    def of(cls, options: Any) -> SignOptRule:
        """The rule a config asks for with its ``signopt_line_search``, ``signopt_stall_reset`` and
        ``signopt_tol_beta_divisor`` options (a divisor of 0: the lab's relative tolerance)."""
        return cls(bool(options.signopt_line_search), bool(options.signopt_stall_reset),
                   float(options.signopt_tol_beta_divisor) or None)

    def options(self) -> dict[str, Any]:
        """The config options that ask for this rule (the inverse of :meth:`of`)."""
        return {"signopt_line_search": self.line_search, "signopt_stall_reset": self.stall_reset,
                "signopt_tol_beta_divisor": self.tol_beta_divisor or 0.0}


#: the authors' public code (its ``untargeted_mbd.py``): doubling line search, α reset with β shrink, tolerance β/500
AUTHORS_SIGNOPT = SignOptRule(line_search=True, stall_reset=True, tol_beta_divisor=500.0)
#: tries of each half of the line search (doubling, then quartering), as in the authors' code
LINE_SEARCH_TRIES = 15


def _bracketed_distance(box: Box, x0f: torch.Tensor, shape: tuple[int, ...], owner: torch.Tensor,
                        theta: torch.Tensor, y0: torch.Tensor, target: torch.Tensor | None, g: torch.Tensor,
                        tol: torch.Tensor, max_queries: torch.Tensor, chunk: int | None) -> RaySearch:
    """The authors' local measure of a candidate direction: one query at the current distance ``g``; where it
    hits, steps of ×0.99 toward the sample until it misses, then bisection of the last bracket to ``tol``. A
    candidate that misses at ``g`` cannot be nearer and is dropped at once (the authors grow it ×1.01 until it
    hits and bisect it before rejecting it: the same decision for more queries)."""
    n, dev = owner.numel(), owner.device
    hi, lo = g.double().clone(), torch.zeros(n, dtype=torch.float64, device=dev)
    queries = torch.zeros(n, dtype=torch.int64, device=dev)
    label = torch.full((n,), -1, dtype=torch.int64, device=dev)
    found = torch.zeros(n, dtype=torch.bool, device=dev)
    idx = _active(max_queries >= 1)
    if idx.numel():
        ans = _answers_along_rays(box, x0f, shape, owner[idx], theta[idx], hi[idx], chunk)
        queries[idx] += 1
        found[idx] = _hit(ans, y0[idx], None if target is None else target[idx])
        label[idx] = torch.where(found[idx], ans, label[idx])
    shrinking = found.clone()
    while True:
        idx = _active(shrinking & (queries < max_queries))
        if idx.numel() == 0:
            break
        shrinking[idx] = _narrow(box, x0f, shape, owner, theta, y0, target, idx, hi[idx] * 0.99, lo, hi, label,
                                 queries, chunk)
    left = torch.where(found, max_queries - queries, torch.zeros_like(queries)).clamp_min(0)  # misses: no more
    rest = _bisect_rays(box, x0f, shape, owner, theta, y0, target, lo, hi, found, tol, 0.0, left, chunk)
    label = torch.where(rest.label >= 0, rest.label, label)
    inf = torch.full_like(hi, math.inf)
    return RaySearch(torch.where(found, rest.distance, inf), rest.lower, label, queries + rest.queries)


def sign_opt(box: Box, x0: torch.Tensor, theta: torch.Tensor, distance: torch.Tensor, y0: torch.Tensor,
             target: torch.Tensor | None = None, *, queries: int | torch.Tensor = 200, n_probes: int = 20,
             beta: float = 1e-3, alpha: float = 0.2, rtol: float = DEFAULT_RTOL, seed: int = 0,
             rule: SignOptRule = SignOptRule(), max_iterations: int | None = None,
             chunk: int | None = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sign-OPT: shrink the boundary distance of rays by moving their directions, batched over rays.

    Every ray ``(x0[i], θ[i])`` starts at its known boundary distance ``distance[i]`` (a hit).
    One iteration draws ``n_probes`` perturbations ``u`` of norm ``beta``, asks the teacher at
    ``x0 + g·normalise(θ + u)`` (sign −1 where it hits, the distance can shrink that way) and forms
    ``ĝ`` from ``Σ sign·u``; new directions ``normalise(θ − α·ĝ)`` are measured and kept where they are
    nearer. How the step is sized and measured, and what a stall does, is ``rule`` (:class:`SignOptRule`).
    Each ray stops when its budget ``queries`` cannot pay a probe round and one check, or after
    ``max_iterations``; no ray spends more than its budget. Distances never grow. Every step of every ray
    is one box call for all active rays. Returns ``(distance, θ, label across, queries)`` per ray.
    """
    dev = x0.device
    n = x0.shape[0]
    shape = tuple(x0.shape[1:])
    x0f = _flat(x0)
    th = _unit(_flat(theta).to(x0f.dtype)).clone()
    g = distance.to(dev).double().clone()
    y0 = y0.to(dev).long()
    tgt = None if target is None else target.to(dev).long()
    label = torch.full((n,), -1, dtype=torch.int64, device=dev) if tgt is None else tgt.clone()
    budget = _as_ray_tensor(queries, n, dev, torch.int64)
    spent = torch.zeros(n, dtype=torch.int64, device=dev)
    step = torch.full((n,), float(alpha), dtype=torch.float64, device=dev)
    radius = torch.full((n,), float(beta), dtype=torch.float64, device=dev)
    running = torch.ones(n, dtype=torch.bool, device=dev)
    gen = _generator(seed, dev)
    owner_all = torch.arange(n, device=dev)
    reserve = 1 if rule.tol_beta_divisor is not None or rule.line_search else \
        1 + min(math.ceil(math.log2(1.0 / rtol)) + 1 if rtol > 0 else 30, 4)
    zero = torch.zeros(n, dtype=torch.float64, device=dev)

    def measure(rays: torch.Tensor, proposal: torch.Tensor, g_now: torch.Tensor) -> RaySearch:
        left = budget[rays] - spent[rays]
        t = None if tgt is None else tgt[rays]
        if rule.tol_beta_divisor is None:
            return _bisect_rays(box, x0f, shape, owner_all[rays], proposal, y0[rays], t, zero[rays], g_now,
                                torch.zeros(rays.numel(), dtype=torch.bool, device=dev), zero[rays], rtol, left, chunk)
        return _bracketed_distance(box, x0f, shape, owner_all[rays], proposal, y0[rays], t, g_now,
                                   radius[rays] / rule.tol_beta_divisor, left, chunk)

    iteration = 0
    while max_iterations is None or iteration < max_iterations:
        iteration += 1
        idx = _active(running & torch.isfinite(g) & (budget - spent >= n_probes + reserve))
        if idx.numel() == 0:
            break
        m = idx.numel()
        u = torch.randn((m, n_probes, x0f.shape[1]), generator=gen, device=dev, dtype=x0f.dtype)
        u = _unit(u) * radius[idx].to(x0f.dtype).view(m, 1, 1)
        probe_dir = _unit(th[idx].unsqueeze(1) + u).reshape(m * n_probes, -1)
        owner = idx.repeat_interleave(n_probes)
        ans = _answers_along_rays(box, x0f, shape, owner, probe_dir, g[owner], chunk)
        spent[idx] += n_probes
        hit = _hit(ans, y0[owner], None if tgt is None else tgt[owner]).view(m, n_probes)
        sign = torch.where(hit, -1.0, 1.0).to(x0f.dtype)
        grad = (sign.unsqueeze(2) * u).sum(1)
        start = th[idx].clone()
        if not rule.line_search:
            proposal = _unit(start - step[idx].to(x0f.dtype).unsqueeze(1) * _unit(grad))
            res = measure(idx, proposal, g[idx])
            spent[idx] += res.queries
            better = res.distance < g[idx]
            g[idx] = torch.where(better, res.distance, g[idx])
            th[idx] = torch.where(better.unsqueeze(1), proposal, th[idx])
            label[idx] = torch.where(better, res.label, label[idx])
            step[idx] = torch.where(better, (step[idx] * 2).clamp_max(1.0), step[idx] / 4)
        else:
            _line_search(idx, start, grad / n_probes, g, th, label, step, spent, budget, measure)
        if rule.stall_reset:
            stalled = idx[step[idx] < 1e-4]
            step[stalled] = 1.0
            radius[stalled] = radius[stalled] * 0.1
            running[stalled] = radius[stalled] >= 1e-8
        else:
            running[idx[~(step[idx] > 1e-4)]] = False
    return g, th.view((n,) + shape), label, spent


def _line_search(idx: torch.Tensor, start: torch.Tensor, grad: torch.Tensor, g: torch.Tensor, th: torch.Tensor,
                 label: torch.Tensor, step: torch.Tensor, spent: torch.Tensor, budget: torch.Tensor,
                 measure: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], RaySearch]) -> None:
    """The authors' line search along ``−grad`` from ``start`` for the rays ``idx`` (updates ``g``, ``th``,
    ``label``, ``step`` and ``spent`` in place): α doubled after every try while the rays keep improving on their
    best so far; rays whose first try failed quarter α until a try beats their starting distance."""
    g_start = g[idx].clone()
    improved = torch.zeros(idx.numel(), dtype=torch.bool, device=idx.device)
    trying = torch.arange(idx.numel(), device=idx.device)
    for phase in ("double", "quarter"):
        if phase == "quarter":
            trying = (~improved).nonzero().squeeze(1)
        for _ in range(LINE_SEARCH_TRIES):
            trying = trying[budget[idx[trying]] > spent[idx[trying]]]
            if trying.numel() == 0:
                break
            rays = idx[trying]
            if phase == "quarter":
                step[rays] = step[rays] * 0.25
            proposal = _unit(start[trying] - step[rays].to(start.dtype).unsqueeze(1) * grad[trying])
            res = measure(rays, proposal, g[rays])
            spent[rays] += res.queries
            if phase == "double":
                step[rays] = step[rays] * 2
            better = res.distance < (g[rays] if phase == "double" else g_start[trying])
            g[rays] = torch.where(better, res.distance, g[rays])
            th[rays] = torch.where(better.unsqueeze(1), proposal, th[rays])
            label[rays] = torch.where(better, res.label, label[rays])
            improved[trying] |= better
            trying = trying[better] if phase == "double" else trying[~better]


def minimal_boundary_distance(box: Box, x: torch.Tensor, y0: torch.Tensor, pool_x: torch.Tensor,
                              pool_y: torch.Tensor, num_classes: int, n_directions: int = 10, *,
                              bd_queries_per_pair: int | None = None, signopt_queries_per_pair: int = 200,
                              n_probes: int = 20, beta: float = 1e-3, alpha: float = 0.2,
                              rtol: float = DEFAULT_RTOL, seed: int = 0, keep_directions: bool = False,
                              rule: SignOptRule = SignOptRule(), block: int | None = None,
                              chunk: int | None = DEFAULT_CHUNK) -> BoundaryDistances:
    """MBD: BD first (``n_directions`` rays per pair), then :func:`sign_opt` on every (sample, class) pair.

    ``signopt_queries_per_pair`` is the Sign-OPT budget of each pair (the authors snapshot at
    1k, 2k, … 20k). MBD distances are never larger than the BD distances they start from
    (kept in ``start_distance``). Both stages send all pairs in each call; ``block`` (default: as many
    samples as one probe call holds) splits the samples only where memory requires it.
    """
    dev = x.device
    n, c = x.shape[0], num_classes
    shape = tuple(x.shape[1:])
    dist_all = torch.full((n, c), math.inf, dtype=torch.float64, device=dev)
    start_all = dist_all.clone()
    q_all = torch.zeros(n, dtype=torch.int64, device=dev)
    dir_all = torch.zeros((n, c) + shape, dtype=x.dtype, device=dev) if keep_directions else None
    block = block or max(1, rays_per_call(math.prod(shape), chunk) // max(1, (c - 1) * n_probes))
    for s in range(0, n, block):
        xb, yb = x[s:s + block], y0[s:s + block].to(dev).long()
        bd = boundary_distance(box, xb, yb, pool_x, pool_y, c, n_directions, queries_per_pair=bd_queries_per_pair,
                               rtol=rtol, seed=seed + s, keep_directions=True, chunk=chunk)
        owner, target = _pair_layout(yb, c)
        assert bd.direction is not None  # keep_directions=True
        g, th, _, spent = sign_opt(box, xb[owner], bd.direction[owner, target], bd.distance[owner, target],
                                   yb[owner], target, queries=signopt_queries_per_pair, n_probes=n_probes,
                                   beta=beta, alpha=alpha, rtol=rtol, seed=seed + s, rule=rule, chunk=chunk)
        start_all[s:s + block] = bd.distance
        dist_all[s + owner, target] = g
        q_all[s:s + block] = bd.queries + torch.zeros(xb.shape[0], dtype=torch.int64, device=dev
                                                      ).index_add_(0, owner, spent)
        if dir_all is not None:
            dir_all[s + owner, target] = th
    return BoundaryDistances(dist_all, q_all, "mbd", dir_all, start_all)


# ---------------------------------------------------------------------------------------------- untargeted
def nearest_boundary(box: Box, x: torch.Tensor, y0: torch.Tensor, n_directions: int = 20,
                     signopt_queries: int = 200, *, radius: float | None = None, n_probes: int = 20,
                     beta: float = 1e-3, alpha: float = 0.2, rtol: float = DEFAULT_RTOL,
                     search_queries: int | None = None, seed: int = 0, previous: torch.Tensor | None = None,
                     rule: SignOptRule = SignOptRule(), block: int | None = None,
                     chunk: int | None = DEFAULT_CHUNK) -> NearestBoundary:
    """Untargeted nearest-boundary search (ZSDB3KD step 2): the closest boundary to *any* other class.

    ``y0`` are the teacher's classes of ``x``. ``n_directions`` random Gaussian rays per sample are
    searched one round at a time up to ``radius`` (default ``√(numel)``, the unit cube's diagonal),
    each later ray checked with one query at the best distance so far (pruning); then untargeted
    :func:`sign_opt` (its ``rule``) spends ``signopt_queries`` per sample. ``search_queries`` caps the random-ray
    stage per sample. ``previous`` (``(N, *shape)``, zero rows: none) are last iteration's directions
    (a warm start): each is bisected on ``[0, radius]`` in the same calls as the first round and replaces
    the random rays' result where it is strictly nearer, before Sign-OPT. Returns distance ``g``, unit
    direction ``θ*``, the class across and queries. A sample whose rays never leave its class gets
    ``g = inf`` and a zero direction. ``block`` (default: as many samples as one call of all their
    random rays holds) splits the samples only where memory requires it.
    """
    dev = x.device
    n = x.shape[0]
    shape = tuple(x.shape[1:])
    p = int(math.prod(shape))
    rad = float(radius) if radius is not None else math.sqrt(p)
    gen = _generator(seed, dev)
    block = block or max(1, rays_per_call(p, chunk) // max(1, n_directions, n_probes))
    dists, dirs, labels, qs = [], [], [], []
    for s in range(0, n, block):
        xb, yb = x[s:s + block], y0[s:s + block].to(dev).long()
        m = xb.shape[0]
        xbf = _flat(xb)
        owner = torch.arange(m, device=dev)
        rand_dirs = _unit(torch.randn((n_directions, m, p), generator=gen, device=dev, dtype=xbf.dtype))
        radius_t = torch.full((m,), rad, dtype=torch.float64, device=dev)
        no_hit = torch.zeros(m, dtype=torch.bool, device=dev)

        def direction_of(k: int, rand_dirs: torch.Tensor = rand_dirs, radius_t: torch.Tensor = radius_t,
                         no_hit: torch.Tensor = no_hit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return rand_dirs[k], radius_t, no_hit

        budget = torch.full((m,), 2 ** 62 if search_queries is None else int(search_queries), dtype=torch.int64,
                            device=dev)
        side, warm_idx, prev = None, None, None
        if previous is not None:
            prev = _flat(previous[s:s + block]).to(dev)
            warm_idx = _active(prev.abs().sum(1) > 0)
            w = warm_idx.numel()
            wz = torch.zeros(w, dtype=torch.float64, device=dev)
            side = _Rays(warm_idx, _unit(prev[warm_idx].to(xbf.dtype)), yb[warm_idx], None, wz,
                         torch.full_like(wz, rad), torch.zeros(w, dtype=torch.bool, device=dev), wz,
                         torch.full((w,), 2 ** 62, dtype=torch.int64, device=dev))
        best, theta, lab, spent, warm = _pruned_rounds(box, xbf, shape, owner, direction_of, n_directions, yb, None,
                                                       rtol, budget, chunk, side)
        if warm is not None and warm_idx is not None and prev is not None:
            better = warm.distance < best[warm_idx]
            best[warm_idx] = torch.where(better, warm.distance, best[warm_idx])
            theta[warm_idx] = torch.where(better.unsqueeze(1), prev[warm_idx].to(theta.dtype), theta[warm_idx])
            lab[warm_idx] = torch.where(better, warm.label, lab[warm_idx])
            spent = spent.index_add(0, warm_idx, warm.queries)
        if signopt_queries > 0:
            g, th, lab2, spent2 = sign_opt(box, xb, theta.view((m,) + shape), best, yb, None, queries=signopt_queries,
                                           n_probes=n_probes, beta=beta, alpha=alpha, rtol=rtol, seed=seed + s,
                                           rule=rule, chunk=chunk)
            lab = torch.where(g < best, lab2, lab)
            best, theta, spent = g, _flat(th), spent + spent2
        dists.append(best)
        dirs.append(torch.where(torch.isfinite(best).unsqueeze(1), theta, torch.zeros_like(theta)).view((m,) + shape))
        labels.append(lab)
        qs.append(spent)
    return NearestBoundary(torch.cat(dists), torch.cat(dirs), torch.cat(labels), torch.cat(qs))


# ---------------------------------------------------------------------------------------------- soft labels
def distance_logits(distances: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DB3KD's scores: ``z_t = 1/d_t`` for t ≠ y (0 where unreachable), ``z_y = Σ_{t≠y} 1/d_t``."""
    d = distances.double()
    z = torch.where(torch.isfinite(d) & (d > 0), 1.0 / d.clamp_min(1e-12), torch.zeros_like(d))
    own = torch.nn.functional.one_hot(y.to(d.device).long(), d.shape[1]).bool()
    z = torch.where(own, torch.zeros_like(z), z)
    return torch.where(own, z.sum(1, keepdim=True), z)


def distance_soft_labels(distances: torch.Tensor, y: torch.Tensor, tau: float = 20.0) -> torch.Tensor:
    """DB3KD soft labels ``softmax(z/τ)`` with ``z`` from :func:`distance_logits`; float32 ``(N, C)``."""
    if tau <= 0:
        raise ValueError("temperature tau must be > 0")
    return torch.softmax(distance_logits(distances, y) / tau, dim=1).float()


def own_class_mass(distances: torch.Tensor, y: torch.Tensor, taus: Sequence[float]) -> tuple[list[float], list[float]]:
    """How flat DB3 soft labels are at each temperature: the mean probability :func:`distance_soft_labels` gives each
    sample's own class, and the mean it gives each other class (``(own, other)``, one value per ``tau``)."""
    own_mass, other_mass = [], []
    c = distances.shape[1]
    for tau in taus:
        p = distance_soft_labels(distances, y, tau).double()
        own = p.gather(1, y.to(p.device).long().view(-1, 1)).squeeze(1)
        own_mass.append(float(own.mean()))
        other_mass.append(float((1 - own).mean() / (c - 1)))
    return own_mass, other_mass
