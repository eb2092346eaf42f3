"""ZSDB3KD's pseudo-samples: noise -> rejection sampling -> (nearest boundary, step away) x iterations.

* :func:`rejection_sample`: draw noise (:mod:`labkit.synthesis.noise`) in batches and keep each image the teacher
  puts in a class that still needs samples; every draw is one query.
* :func:`search_nearest_boundary`: distance and direction of each image's nearest boundary (random
  rays + bisection, then untargeted Sign-OPT; from the second iteration on warm-started from the
  previous direction).
* :func:`label_preserving_step`: ``x <- clip(x - λ·θ*, 0, 1)``, λ halved per image where the label would change.
* :func:`pseudo_sample_soft_labels`: DB3 soft labels from the boundary distances to every other class
  (:func:`class_mean_soft_labels`: their mean per class).
* :class:`PseudoSampleSynthesizer`: all of the above, with snapshots, history and checkpoints; its sizes are a
  :class:`PseudoSampleSettings`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox
from labkit.core.errors import LabkitError
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer
from labkit.synthesis.boundary import SignOptRule, boundary_distance, distance_soft_labels, nearest_boundary
from labkit.synthesis.noise import noise_images
from labkit.synthesis.query_recorder import QueryRecorder


@dataclass(frozen=True)
class PseudoSampleSettings:
    """What :class:`PseudoSampleSynthesizer` does: its search, step and labelling sizes, and what it keeps."""

    iterations: int  # search-and-step iterations
    n_directions: int  # random rays of the first nearest-boundary search
    warm_directions: int  # fresh random rays of later searches (plus the previous direction)
    signopt_queries: int  # untargeted Sign-OPT queries per image and iteration
    n_probes: int  # Sign-OPT probes per gradient estimate
    label_directions: int  # boundary-distance rays per (sample, other class) for the soft labels
    init_batch: int  # noise images per rejection-sampling draw
    max_init_draws: int  # cap on noise images drawn for the starting samples
    noise: str = "authors"  # starting-noise family (labkit.synthesis.noise.NOISE_FAMILIES)
    noise_fallback: tuple[str, ...] = ()  # families tried in turn for classes `noise` does not reach in time
    step_size: float = 0.5  # λ, the L2 length of a step away from the boundary
    max_halvings: int = 5  # how often λ is halved for an image whose label would change (-1: until it holds)
    warm_start: bool = True  # later searches also try the previous θ* (lab); False: fresh rays only (the authors)
    signopt_line_search: bool = False  # Sign-OPT steps by the authors' doubling/quartering line search
    signopt_stall_reset: bool = False  # a stalled Sign-OPT step resets α to 1 and shrinks β tenfold
    signopt_tol_beta_divisor: float = 0.0  # candidates bisected to β / this (the authors: 500); 0: relative tol
    tau: float = 20.0  # soft-label temperature
    keep_noise_bank: bool = False  # record every noise draw (extras["recorder"]), at least min_init_draws of them
    min_init_draws: int = 0  # with keep_noise_bank: noise images drawn at least
    keep_paths: bool = False  # keep the images before every iteration (extras["trajectory"])
    snapshot_every: int = 1  # iterations between snapshots
    snapshot_per_class: int = 3  # images per class kept in every snapshot
    curve_points: int = 0  # iterations whose images are kept whole (extras["checkpoints"]); 0: none

    def signopt_rule(self) -> SignOptRule:
        """The Sign-OPT rule these settings ask for."""
        return SignOptRule.of(self)


class PseudoSampleInitError(LabkitError, RuntimeError):
    """Rejection sampling from noise ran out of draws before every class had its samples."""


# --------------------------------------------------------------------------- starting samples
@dataclass
class InitialSamples:
    """Rejection-sampling result: ``per_class`` images of every class, sorted by class."""

    images: torch.Tensor
    labels: torch.Tensor
    draws: int  # noise images queried (= queries spent)
    hits_per_class: list[int]  # how often each class came up among all draws
    draws_per_family: dict[str, int] = field(default_factory=dict)  # noise images drawn from each family
    kept_per_family: dict[str, list[int]] = field(default_factory=dict)  # starting samples per family and class


def rejection_sample(box: BlackBox | QueryRecorder, counts: torch.Tensor | list[int], image_shape: tuple[int, ...], *,
                     seed: int = 0, batch: int = 8192, max_draws: int = 2_000_000,
                     device: torch.device | str | None = None, progress: bool = False,
                     noise: str = "authors", min_draws: int = 0, extra_phase: str | None = None,
                     fallback: tuple[str, ...] = ()) -> InitialSamples:
    """Draw noise in batches until the teacher has put ``counts[c]`` images in every class ``c``
    (and at least ``min_draws`` images were drawn, for a :class:`~labkit.synthesis.query_recorder.QueryRecorder`
    that keeps them). Batches drawn once every class has its samples are counted under ``extra_phase``
    (``None``: the box's current phase).

    ``fallback`` names further noise families, tried in turn for the classes ``noise`` does not reach in time:
    after every batch, a class still short projects its remaining draws at its rate under the current family
    (no hit yet: one hit per draw so far); once that exceeds what is left of ``max_draws``, the draws switch to the
    next family (docs/methods/zsdb3kd.md). Where ``noise`` fills every class in time, no fallback draw is made.

    Every draw is one query. A class that still lacks samples after ``max_draws`` draws raises
    :class:`PseudoSampleInitError` (nothing is kept). The returned images are sorted by class.
    """
    device = torch.device(device) if device is not None else box.device
    need = torch.as_tensor(counts, dtype=torch.int64).clone()
    num_classes = need.numel()
    gen = torch.Generator().manual_seed(seed)
    kept_x: list[torch.Tensor] = []
    kept_y: list[torch.Tensor] = []
    hits = torch.zeros(num_classes, dtype=torch.int64)
    draws = 0
    families, family = (noise, *fallback), 0
    family_draws = dict.fromkeys(families, 0)
    family_hits = torch.zeros(num_classes, dtype=torch.int64)
    kept_family: list[torch.Tensor] = []
    bar = tqdm(total=int(need.sum()), desc="noise → class", disable=not progress, leave=False)
    while bool((need > 0).any()) or draws < min_draws:
        if draws >= max(max_draws, min_draws):
            short = {c: int(need[c]) for c in range(num_classes) if need[c] > 0}
            seen = {c: int(hits[c]) for c in short}
            bar.close()
            tried = ", ".join(f"{f} {d:,}" for f, d in family_draws.items() if d)
            raise PseudoSampleInitError(
                f"After {draws:,} noise draws ({tried}) the teacher still has not given enough images of class(es) "
                f"{sorted(short)} (missing {short}; seen {seen} times in all). Raise max_init_draws "
                "(--max-init-draws), or ask for fewer pseudo-samples per class (--per-class).")
        still_short = need > 0
        if family + 1 < len(families) and bool(still_short.any()) and family_draws[families[family]] > 0:
            projected = need[still_short] * family_draws[families[family]] / family_hits[still_short].clamp_min(1)
            if bool((projected > max_draws - draws).any()):
                family, family_hits = family + 1, torch.zeros_like(family_hits)
        n = min(batch, max(max_draws, min_draws) - draws)
        x = noise_images(n, image_shape, gen, device, families[family])
        y = box(x, phase=None if bool(still_short.any()) else extra_phase).to(device)
        draws += n
        family_draws[families[family]] += n
        found = torch.bincount(y.cpu(), minlength=num_classes)
        hits += found
        family_hits += found
        # keep, per class, the first need[c] hits of this batch: rank of every image within its class
        onehot = torch.nn.functional.one_hot(y, num_classes)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep = rank < need.to(device)[y]
        kept_x.append(x[keep])
        kept_y.append(y[keep])
        kept_family.append(torch.full((int(keep.sum()),), family, dtype=torch.int64))
        got = torch.bincount(y[keep].cpu(), minlength=num_classes)
        need -= got
        bar.update(int(got.sum()))
    bar.close()
    xs, ys, fs = torch.cat(kept_x), torch.cat(kept_y), torch.cat(kept_family)
    order = torch.argsort(ys, stable=True)
    kept = {f: torch.bincount(ys.cpu()[fs == i], minlength=num_classes).tolist() for i, f in enumerate(families)
            if family_draws[f]}
    return InitialSamples(xs[order], ys[order], draws, hits.tolist(), {f: d for f, d in family_draws.items() if d},
                          kept)


# --------------------------------------------------------------------------- the label-preserving step
@dataclass
class StepResult:
    """One label-preserving step: new images, the λ each image moved by (0: it stayed), queries spent."""

    images: torch.Tensor
    step: torch.Tensor  # (N,) λ used; 0 where every proposal changed the label (or no direction)
    queries: int

    @property
    def moved(self) -> torch.Tensor:
        """Images that took a step."""
        return self.step > 0


#: rounds of an uncapped halving: 0.5 · 2⁻⁶⁰ is far below what float32 pixels can resolve
UNCAPPED_HALVINGS = 60


def label_preserving_step(box: BlackBox, x: torch.Tensor, y: torch.Tensor, direction: torch.Tensor,
                          step_size: float | torch.Tensor = 0.5, max_halvings: int = 5) -> StepResult:
    """Move every image *away* from its nearest boundary without changing the teacher's label.

    ``direction`` holds unit vectors ``θ*`` pointing toward each image's nearest boundary (a zero
    vector: no boundary found, the image is left alone and costs nothing). The proposal is
    ``clip(x − λ·θ*, 0, 1)``; images whose proposal the teacher labels differently from ``y``
    get ``λ/2`` and are proposed again (one batched query per round, only for those images), at
    most ``max_halvings`` times; ``-1`` halves until the label holds, as the authors' code does (the proposal tends
    to the image itself, whose label is ``y``; :data:`UNCAPPED_HALVINGS` rounds at most, below float precision).
    An image whose last proposal still changes the label stays where it was. Returns a :class:`StepResult`.
    """
    n = x.shape[0]
    lam = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(n).clone()
    has_dir = direction.reshape(n, -1).abs().sum(1) > 0
    out = x.clone()
    used = torch.zeros(n, dtype=x.dtype, device=x.device)
    active = has_dir.nonzero().squeeze(1)
    queries = 0
    view = (-1,) + (1,) * (x.dim() - 1)
    if max_halvings < -1:
        raise ValueError(f"max_halvings must be >= 0, or -1 for halving until the label holds; got {max_halvings}")
    for _ in range((UNCAPPED_HALVINGS if max_halvings == -1 else max_halvings) + 1):
        if active.numel() == 0:
            break
        proposal = (x[active] - lam[active].view(view) * direction[active]).clamp(0.0, 1.0)
        same = box(proposal).to(x.device) == y[active]
        queries += active.numel()
        out[active] = torch.where(same.view(view), proposal, out[active])
        used[active] = torch.where(same, lam[active], used[active])
        active = active[~same]  # the one host sync of a round: the size of the next call
        lam[active] = lam[active] / 2
    return StepResult(out, used, queries)


# --------------------------------------------------------------------------- nearest boundary (warm-started)
def search_nearest_boundary(box: BlackBox, x: torch.Tensor, y: torch.Tensor, settings: PseudoSampleSettings,
                            previous: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``g`` and unit direction ``θ*`` (toward the boundary) of every image's nearest boundary.

    Without ``previous`` this is :func:`labkit.synthesis.boundary.nearest_boundary` with ``settings.n_directions``
    random rays and ``settings.signopt_queries`` of Sign-OPT. With ``previous`` (last iteration's θ*),
    ``settings.warm_directions`` fresh random rays compete with the bisected previous θ* (bisected in the same
    box calls as the first random ray), and Sign-OPT refines the winner (same budget), so its progress
    carries over from one iteration to the next.
    """
    rays = settings.n_directions if previous is None else max(1, settings.warm_directions)
    res = nearest_boundary(box, x, y, n_directions=rays, signopt_queries=settings.signopt_queries,
                           n_probes=settings.n_probes, seed=seed, previous=previous, rule=settings.signopt_rule())
    return res.distance, res.direction


# --------------------------------------------------------------------------- DB3 soft labels
def pseudo_sample_soft_labels(box: BlackBox, x: torch.Tensor, y: torch.Tensor, num_classes: int, n_directions: int,
                              tau: float = 20.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """DB3 soft labels of pseudo-samples: BD to every other class along rays toward that class's
    other pseudo-samples (their teacher class is known, so no check query), then
    :func:`labkit.synthesis.boundary.distance_soft_labels`. Returns ``(soft labels (N, C), distances (N, C))``."""
    bd = boundary_distance(box, x, y, x, y, num_classes, n_directions=n_directions, nearest=True, seed=seed)
    return distance_soft_labels(bd.distance, y, tau), bd.distance


def class_mean_soft_labels(soft: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)``: row ``c`` is the mean soft label of the pseudo-samples of class ``c`` (uniform if none)."""
    return torch.stack([soft[y == c].mean(0) if bool((y == c).any())
                        else torch.full((soft.shape[1],), 1.0 / soft.shape[1], device=soft.device)
                        for c in range(num_classes)])


def checkpoint_iterations(iterations: int, curve_points: int) -> list[int]:
    """Iterations ``0, it/k, …`` (``k = curve_points``; 0: the noise start) whose images the accuracy curve keeps."""
    if curve_points <= 0 or iterations <= 0:
        return []
    return sorted({int(round(i * iterations / curve_points)) for i in range(curve_points)})


# --------------------------------------------------------------------------- the synthesizer
@dataclass
class IterationStats:
    """What one search-and-step iteration measured (one row of the history)."""

    iteration: int
    mean_distance: float  # mean nearest-boundary distance before the step (finite ones)
    median_distance: float
    found: float  # fraction of images whose search found a boundary
    moved: float  # fraction of images that took a step
    mean_step: float  # mean λ over the images that moved
    queries: int  # cumulative queries after this iteration (including the initial sampling)


class PseudoSampleSynthesizer(Synthesizer):
    """ZSDB3KD's pseudo-samples: noise → rejection sampling → (nearest boundary, step away) × iterations.

    ``synthesize(n)`` makes ``n`` samples split evenly over the classes and returns DB3 soft labels
    as targets. ``extras`` holds the teacher classes (``labels``), the per-iteration history, the
    boundary distances of the final images, (``checkpoints``) full copies of the images at
    ``settings.curve_points`` intermediate iterations, the ``recorder`` (with ``keep_noise_bank``: a
    :class:`~labkit.synthesis.query_recorder.QueryRecorder` holding every noise draw, else ``None``) and the
    ``trajectory`` (with ``keep_paths``: the images before every iteration, ``(T, N, *shape)``, else ``None``).

    With ``keep_noise_bank``, rejection sampling draws at least ``settings.min_init_draws`` images; the draws
    made once every class has its starting samples are counted under the phase ``"noise bank"``.
    """

    def __init__(self, box: BlackBox, settings: PseudoSampleSettings, num_classes: int, image_shape: tuple[int, ...],
                 seed: int = 0, device: torch.device | str | None = None) -> None:
        super().__init__(box, seed, device=device, decision_only="ZSDB3KD")
        self.settings = settings
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)

    def checkpoint_iterations(self) -> list[int]:
        """Iterations ``0, it/k, …`` (``k = curve_points``; 0: the noise start) whose images the curve keeps."""
        return checkpoint_iterations(self.settings.iterations, self.settings.curve_points)

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        settings, box, c = self.settings, self.box, self.num_classes
        counts = torch.full((c,), n // c, dtype=torch.int64)
        counts[: n % c] += 1
        q0 = box.queries
        recorder = QueryRecorder(box) if settings.keep_noise_bank else None  # keeps every noise draw, labelled
        with box.phase("initial noise"):
            init = rejection_sample(box if recorder is None else recorder, counts, self.image_shape, seed=self.seed,
                                    batch=settings.init_batch, max_draws=settings.max_init_draws, device=self.device,
                                    progress=progress,
                                    noise=settings.noise, min_draws=0 if recorder is None else settings.min_init_draws,
                                    extra_phase="noise bank", fallback=tuple(settings.noise_fallback))
        x, y = init.images, init.labels
        snap_idx = torch.cat([(y == k).nonzero().squeeze(1)[: settings.snapshot_per_class] for k in range(c)])
        snapshots = [Snapshot(0, x[snap_idx].cpu().clone(), y[snap_idx].cpu().clone())]
        checkpoints: list[dict[str, Any]] = []
        keep_at = set(self.checkpoint_iterations())
        history: list[IterationStats] = []
        theta: torch.Tensor | None = None
        # the images before every iteration (their labels are verified: y)
        trajectory: list[torch.Tensor] = [x.clone()] if settings.keep_paths else []
        last_distance = torch.full((x.shape[0],), math.inf, dtype=torch.float64)
        bar = tqdm(range(settings.iterations), desc="pseudo-samples", disable=not progress, leave=False)
        for it in bar:
            if it in keep_at:
                checkpoints.append({"iteration": it, "images": x.clone(), "queries": box.queries - q0})
            with box.phase("nearest boundary"):
                dist, theta = search_nearest_boundary(box, x, y, settings, theta if settings.warm_start else None,
                                                      seed=self.seed + 7919 * (it + 1))
            with box.phase("step away"):
                step = label_preserving_step(box, x, y, theta, settings.step_size, settings.max_halvings)
            x = step.images
            if settings.keep_paths and it + 1 < settings.iterations:
                trajectory.append(x.clone())
            found = torch.isfinite(dist)
            fd = dist[found].double()
            moved = step.moved
            history.append(IterationStats(
                it + 1, float(fd.mean()) if fd.numel() else math.nan, float(fd.median()) if fd.numel() else math.nan,
                float(found.float().mean()), float(moved.float().mean()),
                float(step.step[moved].mean()) if bool(moved.any()) else 0.0, box.queries - q0))
            last_distance = dist.detach().double().cpu()
            bar.set_postfix(dist=f"{history[-1].mean_distance:.3f}", moved=f"{history[-1].moved:.2f}")
            if (it + 1) % settings.snapshot_every == 0 or it + 1 == settings.iterations:
                snapshots.append(Snapshot(it + 1, x[snap_idx].cpu().clone(), y[snap_idx].cpu().clone()))
        generation_queries = box.queries - q0
        with box.phase("soft labels"):
            soft, distances = pseudo_sample_soft_labels(box, x, y, c, settings.label_directions, settings.tau,
                                                        self.seed)
        extras: dict[str, object] = {
            "labels": y, "history": [asdict(h) for h in history], "init_draws": init.draws,
            "init_hits_per_class": init.hits_per_class, "init_draws_per_family": init.draws_per_family,
            "init_kept_per_family": init.kept_per_family, "generation_queries": generation_queries,
            "label_queries": box.queries - q0 - generation_queries, "distances": distances,
            "nearest_distance": last_distance, "checkpoints": checkpoints, "recorder": recorder,
            "trajectory": torch.stack(trajectory) if trajectory else None,
        }
        return SynthesisResult(x, soft, snapshots, extras)
