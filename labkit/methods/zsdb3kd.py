"""ZSDB3KD: zero-shot pseudo-samples from a decision-only teacher (Wang, ICML 2021; METHODS.md §3).

No data at all, and the teacher answers only top-1 class ids. The transfer set is grown
from noise by pushing each image *away from its nearest decision boundary*:

1. **Starting samples** (:func:`noise_images`, :func:`rejection_sample`): draw noise in batches
   and keep each image the teacher puts in a class that still needs samples, until every class has
   ``per_class``. Every draw is one counted query. The authors' noise (``noise="authors"``, the paper
   profile) is ``clip((U[0,1) + 0.2)·s₁ + N(0,1)·s₂, 0, 1)`` with ``s₁, s₂ ~ U(0,1)`` per image:
   independent pixels, under which some classes are very rare (for the lab's Fashion-MNIST teacher
   ankle boots come up about once in 4000 draws). The smoke and laptop profiles use dead-leaves noise
   (:func:`dead_leaves_noise`, flat shapes stacked on a background, a generic model of natural
   images), under which every class comes up at least about twice in 1000 draws. Draws are capped and a
   class that never shows up raises :class:`PseudoSampleInitError` with advice.
2. **Nearest boundary** (:func:`labkit.boundary.nearest_boundary`): random rays plus
   bisection, then untargeted Sign-OPT, give each image the distance ``g`` to the closest
   boundary (to any other class) and the unit direction ``θ*`` pointing *toward* it
   (``x + g·θ*`` is across the boundary). From the second iteration on, the previous
   ``θ*`` is bisected again as one more candidate ray (a warm start; the boundary moves
   little in one step), so Sign-OPT keeps refining instead of starting over.
3. **Label-preserving step** (:func:`label_preserving_step`): ``x ← clip(x − λ·θ*, 0, 1)``,
   i.e. *away* from that boundary. Every proposal is checked with one query; where the
   teacher's label would change, that image's ``λ`` is halved and only those images are
   proposed again, up to ``max_halvings`` times (an image that never passes stays put).
4. **Iterate** 2–3, keeping snapshots every ``snapshot_every`` iterations.
5. **Label and train**: DB3 soft labels from the boundary distances to every other class
   (:func:`labkit.boundary.boundary_distance`, rays toward the *other pseudo-samples* of that
   class, which the teacher already labelled, so the far end costs no query), then
   :func:`labkit.boundary.distance_soft_labels` at τ = 20. The student minimises
   ``α·CE(S, y) + (1 − α)·τ²·KL(p ‖ softmax(S/τ))`` (batch mean), the authors' CE + KL with
   Hinton's τ² so that the soft term keeps its weight at τ = 20.

Every query is also a labelled image. With ``record_fraction > 0`` (the smoke and laptop profiles; off
in the paper profile) every query goes through a :class:`QueryBank` that keeps that share of the queried
images with the teacher's answer; with ``record_search=False`` (smoke, laptop) only the noise draws of
step 1 are kept, and ``min_init_draws`` makes step 1 draw many more of them than the pseudo-samples need.
``bank_per_class`` of them per class (class-balanced) join the student's training set with hard labels
(and the class's mean soft label for the KL term), at no extra query. This is the lab's addition, not
the authors'. Measured on the validation split (laptop profile, seeds 0-1): the 400 pseudo-samples alone
give a student of about 15-20 %; with 30 % of *all* queries recorded, 35-50 % (authors' noise); with
200 000 dead-leaves draws as the bank, 65-70 %; the search-ray points right at the boundaries, added to
those, cost 4-5 points. The authors instead spend ~10⁹ queries on 30 000 pseudo-samples. With a bank,
the pseudo-samples' paths (their image before every iteration, label verified by the step) also join the
training set, and the pseudo-samples are repeated ``pseudo_repeat`` times so that a few hundred of them
are not drowned by the bank; ``restarts`` students can be trained and the best on the holdout kept.

Optionally (``mixup_fraction``, on in the smoke profile, off in the laptop and paper profiles),
part of every training batch is replaced by mixups of two pseudo-samples labelled by one
decision query each (:func:`relabelled_mixup_hook`): a cheap way, at one query per image, to show
the student what the teacher decides *between* the pseudo-samples. This is the lab's addition,
not the authors'.

Model selection uses a teacher-labelled holdout of the pseudo-samples (the labels come for
free: every pseudo-sample's class is verified by the step's check query). Optionally,
students are also trained at a few intermediate iterations (``curve_points``) so that a
notebook can plot accuracy against iterations and against queries; their labelling queries
are counted under their own phase, ``"accuracy curve"``.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from ..blackbox import BlackBox
from ..boundary import DEFAULT_RTOL, bisect_boundary, boundary_distance, distance_soft_labels, nearest_boundary, \
    sign_opt
from ..errors import AccessDenied, LabkitError
from ..losses import SoftLabelKD
from ..profiles import Profile
from ..synthesis import Snapshot, SynthesisResult, Synthesizer
from ..train import BatchHook, FitResult, fit, split_holdout
from .base import DistillationMethod, DistillOutput, MethodData, RunContext, register_method


class PseudoSampleInitError(LabkitError, RuntimeError):
    """Rejection sampling from noise ran out of draws before every class had its samples."""


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ZSDB3KDConfig:
    """Sizes and settings of ZSDB3KD for one profile (override any field by keyword)."""

    per_class: int  # pseudo-samples per class
    iterations: int  # search-and-step iterations
    n_directions: int  # random rays of the first nearest-boundary search
    warm_directions: int  # fresh random rays in later searches (plus the previous θ*)
    signopt_queries: int  # untargeted Sign-OPT budget per image and iteration
    label_directions: int  # BD rays per (sample, other class) for the soft labels
    epochs: int  # student epochs
    batch_size: int  # student batch size
    lr: float = 2e-3  # student learning rate
    step_size: float = 0.5  # λ, the L2 length of a step away from the boundary
    max_halvings: int = 5  # how often λ is halved for an image whose label would change
    n_probes: int = 20  # Sign-OPT probes per gradient estimate
    snapshot_every: int = 5  # iterations between snapshots
    snapshot_per_class: int = 6  # images per class kept in every snapshot
    tau: float = 20.0  # soft-label temperature (and the KL's)
    alpha: float = 0.5  # weight of the hard-label CE term
    holdout_fraction: float = 0.1  # pseudo-samples kept aside (teacher-labelled) to select the epoch
    init_batch: int = 8192  # noise images per rejection-sampling draw
    max_init_draws: int = 2_000_000  # cap on noise images queried before giving up
    min_init_draws: int = 0  # noise images queried at least (with a bank: every one a labelled training image)
    curve_points: int = 0  # earlier iterations (0, it/k, 2·it/k, …) at which a student is also trained (0: none)
    mixup_fraction: float = 0.0  # share of each training batch replaced by teacher-relabelled mixups (0: off)
    record_fraction: float = 0.0  # share of all queried images kept, with the teacher's answer, as extra training data
    bank_per_class: int = 0  # recorded images per class (resampled, class-balanced) added to the student's training set
    record_search: bool = True  # the bank also keeps the search, step and soft-label queries (False: noise draws only)
    restarts: int = 1  # students trained from different initialisations; the best on the holdout is kept
    pseudo_repeat: int = 1  # with a bank: times each pseudo-sample and its path images appear in the training set
    noise: str = "authors"  # starting-noise family (NOISE_FAMILIES): "authors" (i.i.d. pixels), "smooth", "dead-leaves"

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> "ZSDB3KDConfig":
        """The profile's defaults with any non-None overrides."""
        if profile.name == "smoke":
            base = cls(per_class=3, iterations=3, n_directions=3, warm_directions=1, signopt_queries=20,
                       label_directions=1, epochs=3, batch_size=16, n_probes=6, snapshot_every=1,
                       snapshot_per_class=3, init_batch=4096, max_init_draws=400_000, curve_points=1,
                       mixup_fraction=0.5, noise="dead-leaves", min_init_draws=16_384, record_fraction=1.0,
                       record_search=False, bank_per_class=300)
        elif profile.name == "laptop":
            # laptop: few Sign-OPT queries per image and iteration, and a bank of teacher-labelled noise. Measured on
            # the validation split (seeds 0-1, two student initialisations each): 400 pseudo-samples (+ paths) alone
            # ~15-20 %; + 30 % of all queries as training images: 35-50 % (authors' noise), 49-53 % (smooth noise);
            # dead-leaves noise + all queries, 10k/class: 54-59 %; + 200k noise draws: 60-66 %; 200k noise draws
            # only (no search/step/label queries, which sit right at the boundaries): 65-70 %. One student
            # (restarts picked by the holdout did not beat the first reliably); 6000 bank images per class keep
            # the run near 160 s on one core (10 000: ~2 points more, ~225 s). The paths of the pseudo-samples join
            # the training set, each repeated 3 times.
            base = cls(per_class=40, iterations=10, n_directions=8, warm_directions=1, signopt_queries=40,
                       label_directions=2, epochs=4, batch_size=256, lr=4e-3, n_probes=10, snapshot_every=2,
                       max_init_draws=3_000_000, curve_points=2, noise="dead-leaves", min_init_draws=200_000,
                       record_fraction=1.0, record_search=False, bank_per_class=6000, restarts=1, pseudo_repeat=3)
        else:  # paper: the authors' sizes (3000/class, 40 iterations, ~5000 Sign-OPT queries per image)
            base = cls(per_class=3000, iterations=40, n_directions=20, warm_directions=19, signopt_queries=5000,
                       label_directions=200, epochs=profile.student_epochs, batch_size=profile.batch_size,
                       lr=1e-3, snapshot_every=5, max_init_draws=200_000_000, init_batch=65536, curve_points=4)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------- 1. starting samples
def authors_noise(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """The authors' noise: ``clip((U[0,1) + 0.2)·s₁ + N(0,1)·s₂, 0, 1)``, ``s₁, s₂ ~ U(0,1)`` per image (i.i.d. pixels)."""
    scale_shape = (n,) + (1,) * len(shape)
    s1 = torch.rand(scale_shape, generator=generator)
    s2 = torch.rand(scale_shape, generator=generator)
    x = (torch.rand((n,) + tuple(shape), generator=generator) + 0.2) * s1 \
        + torch.randn((n,) + tuple(shape), generator=generator) * s2
    return x.clamp_(0.0, 1.0)


def _image_dims(shape: tuple[int, ...], family: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of an image shape; the image-prior noise families need images."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    raise LabkitError(f"The {family!r} noise family needs image inputs (C, H, W), got shape {tuple(shape)}; "
                      "use noise='authors' (i.i.d. pixels) for other inputs.")


def smooth_noise(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Low-frequency noise: Gaussian noise on a grid a quarter of the image side, upsampled bilinearly,
    standardised, then ``sigmoid(gain·z + bias)`` with ``gain ~ U(0,3)``, ``bias ~ N(0, 1.5²)`` per image.

    A generic image prior (neighbouring pixels are alike), nothing learnt from any data set: blobs and
    gradients instead of per-pixel snow. Values lie in (0, 1).
    """
    c, h, w = _image_dims(shape, "smooth")
    z = torch.randn((n, c, max(2, h // 4), max(2, w // 4)), generator=generator)
    z = torch.nn.functional.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
    z = z / z.flatten(1).std(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    gain = 3 * torch.rand((n, 1, 1, 1), generator=generator)
    bias = 1.5 * torch.randn((n, 1, 1, 1), generator=generator)
    return torch.sigmoid(gain * z + bias).reshape((n,) + tuple(shape))


def dead_leaves_noise(n: int, shape: tuple[int, ...], generator: torch.Generator, max_shapes: int = 6) -> torch.Tensor:
    """Dead-leaves noise: a flat background of random grey (colour) with 1-``max_shapes`` opaque shapes stacked on it.

    Every shape is an ellipse or an axis-aligned rectangle with a random centre (within 80 % of the half-side
    from the middle), random half-axes (10-80 % of the half-side) and a random flat intensity ``U(0,1)`` per
    channel; later shapes cover earlier ones. This is the classic dead-leaves model of natural images
    (Lee, Mumford & Huang 2001), used as data-free training images by Baradad et al. (NeurIPS 2021): edges,
    occlusion and flat regions, nothing learnt from any data set.
    """
    c, h, w = _image_dims(shape, "dead-leaves")
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    col = (n, c, 1, 1)
    one = (n, 1, 1, 1)
    img = torch.rand(col, generator=generator).expand(n, c, h, w).clone()
    k = torch.randint(1, max_shapes + 1, (n,), generator=generator).view(one)
    for layer in range(max_shapes):
        cx, cy = (torch.rand(one, generator=generator) * 1.6 - 0.8 for _ in range(2))
        a, b = (0.1 + 0.7 * torch.rand(one, generator=generator) for _ in range(2))
        rect = torch.rand(one, generator=generator) < 0.5
        dx, dy = (xx - cx) / a, (yy - cy) / b
        inside = torch.where(rect, (dx.abs() < 1) & (dy.abs() < 1), dx * dx + dy * dy < 1) & (layer < k)
        img = torch.where(inside, torch.rand(col, generator=generator), img)
    return img.reshape((n,) + tuple(shape))


#: starting-noise families for :func:`noise_images` (``ZSDB3KDConfig.noise``)
NOISE_FAMILIES = {"authors": authors_noise, "smooth": smooth_noise, "dead-leaves": dead_leaves_noise}


def noise_images(n: int, shape: tuple[int, ...], generator: torch.Generator,
                 device: torch.device | str = "cpu", family: str = "authors") -> torch.Tensor:
    """``n`` noise images of one of the :data:`NOISE_FAMILIES` (default: the authors')."""
    if family not in NOISE_FAMILIES:
        raise LabkitError(f"Unknown noise family {family!r}; choose one of {sorted(NOISE_FAMILIES)}.")
    return NOISE_FAMILIES[family](n, tuple(shape), generator).to(device)


@dataclass
class InitialSamples:
    """Rejection-sampling result: ``per_class`` images of every class, sorted by class."""

    images: torch.Tensor
    labels: torch.Tensor
    draws: int  # noise images queried (= queries spent)
    hits_per_class: list[int]  # how often each class came up among all draws


def rejection_sample(box: BlackBox, counts: torch.Tensor | list[int], image_shape: tuple[int, ...], *,
                     seed: int = 0, batch: int = 8192, max_draws: int = 2_000_000,
                     device: torch.device | str | None = None, progress: bool = False,
                     noise: str = "authors", min_draws: int = 0) -> InitialSamples:
    """Draw noise in batches until the teacher has put ``counts[c]`` images in every class ``c``
    (and at least ``min_draws`` images were drawn, for a :class:`QueryBank` that records them).

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
    bar = tqdm(total=int(need.sum()), desc="noise → class", disable=not progress, leave=False)
    while bool((need > 0).any()) or draws < min_draws:
        if draws >= max(max_draws, min_draws):
            short = {c: int(need[c]) for c in range(num_classes) if need[c] > 0}
            seen = {c: int(hits[c]) for c in short}
            bar.close()
            raise PseudoSampleInitError(
                f"After {draws:,} noise draws the teacher still has not given enough images of class(es) "
                f"{sorted(short)} (missing {short}; seen {seen} times in all). Raise max_init_draws "
                "(--max-init-draws), or ask for fewer pseudo-samples per class (--per-class).")
        n = min(batch, max(max_draws, min_draws) - draws)
        x = noise_images(n, image_shape, gen, device, noise)
        y = box(x).to(device)
        draws += n
        hits += torch.bincount(y.cpu(), minlength=num_classes)
        # keep, per class, the first need[c] hits of this batch: rank of every image within its class
        onehot = torch.nn.functional.one_hot(y, num_classes)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep = rank < need.to(device)[y]
        kept_x.append(x[keep])
        kept_y.append(y[keep])
        got = torch.bincount(y[keep].cpu(), minlength=num_classes)
        need -= got
        bar.update(int(got.sum()))
    bar.close()
    xs, ys = torch.cat(kept_x), torch.cat(kept_y)
    order = torch.argsort(ys, stable=True)
    return InitialSamples(xs[order], ys[order], draws, hits.tolist())


# --------------------------------------------------------------------------- recorded queries
class BankDraw(NamedTuple):
    """A class-balanced draw from a :class:`QueryBank` (float32 images, teacher class ids)."""

    x: torch.Tensor
    y: torch.Tensor
    holdout_x: torch.Tensor
    holdout_y: torch.Tensor
    distinct: int  # distinct images among ``x`` (a rare class is drawn with replacement)


class QueryBank:
    """A decision box that also *keeps* part of what it is asked: every queried image comes back labelled.

    Calling the bank calls the wrapped :class:`~labkit.blackbox.BlackBox` (which counts every image, as
    always) and keeps each queried image with probability ``fraction``, with the teacher's answer and the
    box's query count after that call (so a transfer set can be cut at any earlier point of the run).
    Rejection sampling, the nearest-boundary search, the label-preserving steps and the soft-label rays
    all send their images through it, so the bank holds noise, points along the search rays (on both
    sides of the boundaries), the steps' verified proposals and points between pseudo-samples: many
    teacher-labelled images at no extra query. Set ``recording = False`` to pass queries through without
    keeping any (the synthesizer does so after the noise draws when ``record_search`` is off). Images are
    stored in half precision (within ~1e-3 of the queried point per pixel). Attribute access (``device``,
    ``queries``, ``phase``...) goes to the box.
    """

    def __init__(self, box: BlackBox, fraction: float, seed: int = 0) -> None:
        self.box = box
        self.fraction = float(fraction)
        self.recording = True  # False: pass queries through without keeping any
        self._gen = torch.Generator().manual_seed(seed + 1_000_003)
        self._x: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []
        self._q: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        if name == "box":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.box, name)

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = self.box(x, **kwargs)
        if self.recording and self.fraction > 0 and x.shape[0] > 0:
            keep = (torch.rand(x.shape[0], generator=self._gen) < self.fraction).to(x.device)
            if bool(keep.any()):
                self._x.append(x[keep].detach().to("cpu", torch.float16))
                self._y.append(out[keep].detach().cpu())
                self._q.append(torch.full((int(keep.sum()),), self.box.queries, dtype=torch.int64))
        return out

    def __len__(self) -> int:
        return sum(int(y.numel()) for y in self._y)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All kept ``(images (float16, CPU), teacher classes, box query count when asked)``."""
        if not self._y:
            return torch.zeros((0,) + tuple(self.box.input_shape or ())), torch.zeros(0, dtype=torch.int64), \
                torch.zeros(0, dtype=torch.int64)
        self._x, self._y, self._q = [torch.cat(self._x)], [torch.cat(self._y)], [torch.cat(self._q)]
        return self._x[0], self._y[0], self._q[0]

    def balanced(self, per_class: int, num_classes: int, seed: int = 0, upto: int | None = None,
                 holdout_per_class: int = 0) -> BankDraw:
        """A class-balanced :class:`BankDraw` from the bank: training and holdout images with their classes.

        Only queries made up to box count ``upto`` are used. Per class, up to ``holdout_per_class`` kept images
        (at most half of that class's) are set aside first; then ``per_class`` training images are drawn from
        the rest, without replacement where there are enough, with replacement where not.
        """
        x, y, q = self.tensors()
        if upto is not None:
            x, y = x[q <= upto], y[q <= upto]
        gen = torch.Generator().manual_seed(seed)
        train_idx, hold_idx = [], []
        distinct = 0
        for c in range(num_classes):
            members = (y == c).nonzero().squeeze(1)
            members = members[torch.randperm(members.numel(), generator=gen)]
            h = min(holdout_per_class, members.numel() // 2)
            hold_idx.append(members[:h])
            rest = members[h:]
            if rest.numel() == 0 or per_class <= 0:
                continue
            train_idx.append(rest[:per_class] if rest.numel() >= per_class
                             else rest[torch.randint(rest.numel(), (per_class,), generator=gen)])
            distinct += min(per_class, rest.numel())
        tr = torch.cat(train_idx) if train_idx else torch.zeros(0, dtype=torch.int64)
        ho = torch.cat(hold_idx) if hold_idx else torch.zeros(0, dtype=torch.int64)
        return BankDraw(x[tr].float(), y[tr], x[ho].float(), y[ho], distinct)


# --------------------------------------------------------------------------- 3. the label-preserving step
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


def label_preserving_step(box: BlackBox, x: torch.Tensor, y: torch.Tensor, direction: torch.Tensor,
                          step_size: float | torch.Tensor = 0.5, max_halvings: int = 5) -> StepResult:
    """Move every image *away* from its nearest boundary without changing the teacher's label.

    ``direction`` holds unit vectors ``θ*`` pointing toward each image's nearest boundary (a zero
    vector: no boundary found, the image is left alone and costs nothing). The proposal is
    ``clip(x − λ·θ*, 0, 1)``; images whose proposal the teacher labels differently from ``y``
    get ``λ/2`` and are proposed again (one batched query per round, only for those images), at
    most ``max_halvings`` times. Returns a :class:`StepResult`.
    """
    n = x.shape[0]
    lam = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(n).clone()
    has_dir = direction.reshape(n, -1).abs().sum(1) > 0
    out = x.clone()
    used = torch.zeros(n, dtype=x.dtype, device=x.device)
    active = has_dir.nonzero().squeeze(1)
    queries = 0
    view = (-1,) + (1,) * (x.dim() - 1)
    for _ in range(max_halvings + 1):
        if active.numel() == 0:
            break
        proposal = (x[active] - lam[active].view(view) * direction[active]).clamp(0.0, 1.0)
        same = box(proposal).to(x.device) == y[active]
        queries += active.numel()
        done = active[same]
        out[done] = proposal[same]
        used[done] = lam[done]
        active = active[~same]
        lam[active] = lam[active] / 2
    return StepResult(out, used, queries)


# --------------------------------------------------------------------------- 2. nearest boundary (warm-started)
def search_nearest_boundary(box: BlackBox, x: torch.Tensor, y: torch.Tensor, cfg: ZSDB3KDConfig,
                            previous: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``g`` and unit direction ``θ*`` (toward the boundary) of every image's nearest boundary.

    Without ``previous`` this is :func:`labkit.boundary.nearest_boundary` with ``cfg.n_directions``
    random rays and ``cfg.signopt_queries`` of Sign-OPT. With ``previous`` (last iteration's θ*),
    ``cfg.warm_directions`` fresh random rays compete with the bisected previous θ*, and Sign-OPT
    refines the winner (same budget), so its progress carries over from one iteration to the next.
    """
    if previous is None:
        res = nearest_boundary(box, x, y, n_directions=cfg.n_directions, signopt_queries=cfg.signopt_queries,
                               n_probes=cfg.n_probes, seed=seed)
        return res.distance, res.direction
    rand = nearest_boundary(box, x, y, n_directions=max(1, cfg.warm_directions), signopt_queries=0, seed=seed)
    dist, theta = rand.distance.clone(), rand.direction.reshape(x.shape[0], -1).clone()
    has_prev = previous.reshape(x.shape[0], -1).abs().sum(1) > 0
    if bool(has_prev.any()):
        idx = has_prev.nonzero().squeeze(1)
        radius = math.sqrt(x[0].numel())
        warm = bisect_boundary(box, x[idx], previous[idx].unsqueeze(1), y[idx], None, 0.0, radius, 0.0,
                               rtol=DEFAULT_RTOL)
        wd = warm.distance[:, 0].to(dist.dtype)
        better = wd < dist[idx]
        dist[idx[better]] = wd[better]
        theta[idx[better]] = previous[idx[better]].reshape(int(better.sum()), -1).to(theta.dtype)
    if cfg.signopt_queries > 0 and bool(torch.isfinite(dist).any()):
        g, th, _, _ = sign_opt(box, x, theta.view_as(x), dist, y, None, queries=cfg.signopt_queries,
                               n_probes=cfg.n_probes, seed=seed)
        dist, theta = g, th.reshape(x.shape[0], -1)
    theta = torch.where(torch.isfinite(dist).unsqueeze(1), theta, torch.zeros_like(theta))
    return dist, theta.view_as(x)


# --------------------------------------------------------------------------- 5. DB3 soft labels
def pseudo_sample_soft_labels(box: BlackBox, x: torch.Tensor, y: torch.Tensor, num_classes: int, n_directions: int,
                              tau: float = 20.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """DB3 soft labels of pseudo-samples: BD to every other class along rays toward that class's
    other pseudo-samples (their teacher class is known, so no check query), then
    :func:`labkit.boundary.distance_soft_labels`. Returns ``(soft labels (N, C), distances (N, C))``."""
    bd = boundary_distance(box, x, y, x, y, num_classes, n_directions=n_directions, nearest=True, seed=seed)
    return distance_soft_labels(bd.distance, y, tau), bd.distance


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
    boundary distances of the final images, and (``checkpoints``) full copies of the images at
    ``cfg.curve_points`` intermediate iterations.
    """

    def __init__(self, box: BlackBox, cfg: ZSDB3KDConfig, num_classes: int, image_shape: tuple[int, ...],
                 seed: int = 0, device: torch.device | str | None = None) -> None:
        super().__init__(box, seed)
        if box.access != "decision":
            raise AccessDenied(f"ZSDB3KD is the decision-based method; it needs a 'decision' box, got {box.access!r}.")
        self.cfg = cfg
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.device = torch.device(device) if device is not None else box.device

    def checkpoint_iterations(self) -> list[int]:
        """Iterations ``0, it/k, …`` (``k = curve_points``; 0 is the noise start) whose images are kept for the curve."""
        k, it = self.cfg.curve_points, self.cfg.iterations
        if k <= 0 or it <= 0:
            return []
        return sorted({int(round(i * it / k)) for i in range(k)})

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        cfg, box, c = self.cfg, self.box, self.num_classes
        counts = torch.full((c,), n // c, dtype=torch.int64)
        counts[: n % c] += 1
        q0 = box.queries
        # every query goes through ``ask``: the box itself, or a QueryBank that also keeps part of what was asked
        bank = QueryBank(box, cfg.record_fraction, self.seed) if cfg.record_fraction > 0 else None
        ask: Any = bank if bank is not None else box
        with box.phase("initial noise"):
            init = rejection_sample(ask, counts, self.image_shape, seed=self.seed, batch=cfg.init_batch,
                                    max_draws=cfg.max_init_draws, device=self.device, progress=progress,
                                    noise=cfg.noise, min_draws=cfg.min_init_draws)
        if bank is not None:
            bank.recording = cfg.record_search
        x, y = init.images, init.labels
        snap_idx = torch.cat([(y == k).nonzero().squeeze(1)[: cfg.snapshot_per_class] for k in range(c)])
        snapshots = [Snapshot(0, x[snap_idx].cpu().clone(), y[snap_idx].cpu().clone())]
        checkpoints: list[dict[str, Any]] = []
        keep_at = set(self.checkpoint_iterations())
        history: list[IterationStats] = []
        theta: torch.Tensor | None = None
        # the images before every iteration (their labels are verified: y), kept with a bank only
        trajectory: list[torch.Tensor] = [x.clone()] if bank is not None else []
        last_distance = torch.full((x.shape[0],), math.inf, dtype=torch.float64)
        bar = tqdm(range(cfg.iterations), desc="pseudo-samples", disable=not progress, leave=False)
        for it in bar:
            if it in keep_at:
                checkpoints.append({"iteration": it, "images": x.clone(), "queries": box.queries - q0,
                                    "box_queries": box.queries})
            with box.phase("nearest boundary"):
                dist, theta = search_nearest_boundary(ask, x, y, cfg, theta, seed=self.seed + 7919 * (it + 1))
            with box.phase("step away"):
                step = label_preserving_step(ask, x, y, theta, cfg.step_size, cfg.max_halvings)
            x = step.images
            if bank is not None and it + 1 < cfg.iterations:
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
            if (it + 1) % cfg.snapshot_every == 0 or it + 1 == cfg.iterations:
                snapshots.append(Snapshot(it + 1, x[snap_idx].cpu().clone(), y[snap_idx].cpu().clone()))
        generation_queries = box.queries - q0
        with box.phase("soft labels"):
            soft, distances = pseudo_sample_soft_labels(ask, x, y, c, cfg.label_directions, cfg.tau, self.seed)
        extras: dict[str, object] = {
            "labels": y, "history": [asdict(h) for h in history], "init_draws": init.draws,
            "init_hits_per_class": init.hits_per_class, "generation_queries": generation_queries,
            "label_queries": box.queries - q0 - generation_queries, "distances": distances,
            "nearest_distance": last_distance, "checkpoints": checkpoints, "bank": bank,
            "trajectory": torch.stack(trajectory) if trajectory else None,
        }
        return SynthesisResult(x, soft, snapshots, extras)


# --------------------------------------------------------------------------- training
def relabelled_mixup_hook(box: BlackBox, soft: torch.Tensor, y: torch.Tensor, fraction: float,
                          num_classes: int, phase: str = "relabel mixup") -> BatchHook:
    """A :func:`labkit.train.fit` batch hook: replace ``fraction`` of every batch by mixups of two pseudo-samples
    (``λ ~ U(0,1)`` per image), labelled by **one decision query each** (counted under ``phase``).

    A mixup's soft label is the mean soft label of the pseudo-samples of the class the teacher gives it
    (no distances are measured for it). Mixups fill the space *between* the classes' pseudo-samples,
    where the decision boundaries are, at one query per image.
    """
    class_soft = torch.stack([soft[y == c].mean(0) if bool((y == c).any())
                              else torch.full((soft.shape[1],), 1.0 / soft.shape[1], device=soft.device)
                              for c in range(num_classes)])

    def hook(xb: torch.Tensor, tb: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        m = int(round(fraction * xb.shape[0]))
        if m <= 0 or xb.shape[0] < 2:
            return xb, tb
        partner = torch.randperm(xb.shape[0], generator=gen)[:m].to(xb.device)
        lam = torch.rand(m, generator=gen).to(xb.device, xb.dtype).view((-1,) + (1,) * (xb.dim() - 1))
        mixed = (lam * xb[:m] + (1 - lam) * xb[partner]).clamp(0, 1)
        label = box(mixed.detach(), phase=phase).to(xb.device)
        soft_b, y_b = tb[0].clone(), tb[1].clone()
        soft_b[:m], y_b[:m] = class_soft[label], label
        xb = xb.clone()
        xb[:m] = mixed
        return xb, (soft_b, y_b)

    return hook


def train_on_pseudo_samples(student: torch.nn.Module, x: torch.Tensor, soft: torch.Tensor, y: torch.Tensor,
                            cfg: ZSDB3KDConfig, ctx: RunContext, desc: str = "ZSDB3KD student",
                            seed_offset: int = 0, box: BlackBox | None = None,
                            phase: str = "relabel mixup", bank: QueryBank | None = None,
                            upto: int | None = None, trajectory: torch.Tensor | None = None
                            ) -> tuple[FitResult, int]:
    """Train on ``(x, soft, y)`` with α·CE + (1−α)·τ²·KL, selecting the epoch on a teacher-labelled holdout.

    Returns the :class:`~labkit.train.FitResult` and the transfer-set size: the number of distinct
    teacher-labelled images trained on (repeats and with-replacement draws counted once).

    With ``cfg.mixup_fraction > 0`` and a ``box``, batches also carry teacher-relabelled mixups
    (:func:`relabelled_mixup_hook`); the holdout is never mixed. With a ``bank`` and ``cfg.bank_per_class > 0``,
    ``bank_per_class`` recorded queries per class (up to box count ``upto``) join the training set, each with
    its teacher class and, as soft label, the mean soft label of that class's pseudo-samples; a few more per
    class join the holdout. ``trajectory`` (``(T, N, *shape)``, the pseudo-samples' earlier states, whose
    labels every step verified) adds each training pseudo-sample's path with its soft label; with a bank, the
    pseudo-samples and their paths appear ``cfg.pseudo_repeat`` times.
    """
    keep, hold = split_holdout(x.shape[0], cfg.holdout_fraction, ctx.seed + seed_offset, x.device)
    loss = SoftLabelKD(tau=cfg.tau, alpha=cfg.alpha)
    hook = relabelled_mixup_hook(box, soft[keep], y[keep], cfg.mixup_fraction, soft.shape[1], phase) \
        if box is not None and cfg.mixup_fraction > 0 else None
    tx, ts, ty, hx, hy = x[keep], soft[keep], y[keep], x[hold], y[hold]
    distinct = int(keep.numel())  # distinct teacher-labelled training images: the transfer set
    if bank is not None and cfg.bank_per_class > 0 and len(bank) > 0:
        c = soft.shape[1]
        class_soft = torch.stack([soft[y == k].mean(0) if bool((y == k).any())
                                  else torch.full((c,), 1.0 / c, device=soft.device) for k in range(c)])
        per_hold = max(1, int(round(cfg.bank_per_class * cfg.holdout_fraction / 2)))
        draw = bank.balanced(cfg.bank_per_class, c, ctx.seed + seed_offset, upto, per_hold)
        bx, by, bhx, bhy = draw.x, draw.y, draw.holdout_x, draw.holdout_y
        bx, by, bhx, bhy = bx.to(x.device), by.to(x.device), bhx.to(x.device), bhy.to(x.device)
        if trajectory is not None and trajectory.shape[0] > 0:
            t_steps = trajectory.shape[0]
            tx = torch.cat([tx, trajectory[:, keep].reshape((-1,) + tuple(x.shape[1:])).to(x.device)])
            k = keep.numel()
            ts, ty = torch.cat([ts, ts[:k].repeat(t_steps, 1)]), torch.cat([ty, ty[:k].repeat(t_steps)])
            distinct += k * t_steps
        rep = max(1, cfg.pseudo_repeat)
        tx, ts, ty = tx.repeat((rep,) + (1,) * (x.dim() - 1)), ts.repeat(rep, 1), ty.repeat(rep)
        tx, ts, ty = torch.cat([tx, bx]), torch.cat([ts, class_soft[by]]), torch.cat([ty, by])
        hx, hy = torch.cat([hx, bhx]), torch.cat([hy, bhy])
        distinct += draw.distinct
    res = fit(student, tx, (ts, ty), loss, val=(hx, hy), epochs=cfg.epochs,
              batch_size=cfg.batch_size, lr=cfg.lr, device=ctx.device, seed=ctx.seed + seed_offset,
              progress=ctx.progress, desc=desc, batch_hook=hook)
    return res, distinct


# --------------------------------------------------------------------------- the method
@register_method
class ZSDB3KD(DistillationMethod):
    """ZSDB3KD: pseudo-samples grown from noise away from a decision-only teacher's boundaries, DB3 soft labels."""

    name = "zsdb3kd"
    access = "decision"
    data_access = "none"
    summary = "ZSDB3KD: zero-shot pseudo-samples from a decision-only teacher, DB3 distance soft labels"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--per-class", type=int, help="pseudo-samples per class (paper 3000)")
        parser.add_argument("--iterations", type=int, help="search-and-step iterations (paper 40)")
        parser.add_argument("--queries", dest="signopt_queries", type=int,
                            help="untargeted Sign-OPT queries per image and iteration (paper ~5000)")
        parser.add_argument("--directions", dest="n_directions", type=int,
                            help="random rays of the first nearest-boundary search (paper 20)")
        parser.add_argument("--label-directions", type=int, help="BD rays per (sample, class) for soft labels")
        parser.add_argument("--step-size", type=float, help="λ, the step away from the boundary (default 0.5)")
        parser.add_argument("--tau", type=float, help="soft-label temperature (default 20)")
        parser.add_argument("--alpha", type=float, help="weight of the hard-label CE term (default 0.5)")
        parser.add_argument("--epochs", type=int, help="student epochs")
        parser.add_argument("--lr", type=float, help="student learning rate")
        parser.add_argument("--noise", choices=sorted(NOISE_FAMILIES),
                            help="starting-noise family (authors: i.i.d. pixels; smooth: low-frequency blobs; "
                                 "dead-leaves: stacked flat shapes)")
        parser.add_argument("--min-init-draws", type=int,
                            help="noise images drawn at least (recorded as training images when a bank is on)")
        parser.add_argument("--record-search", action=argparse.BooleanOptionalAction, default=None,
                            help="the bank also keeps search/step/soft-label queries (default: profile)")
        parser.add_argument("--max-init-draws", type=int, help="cap on noise images drawn for the starting samples")
        parser.add_argument("--curve-points", type=int,
                            help="earlier iterations at which a student is also trained (accuracy curve; 0: none)")
        parser.add_argument("--mixup-fraction", type=float,
                            help="share of each batch replaced by teacher-relabelled mixups (0: off)")
        parser.add_argument("--record-fraction", type=float,
                            help="share of all queried images kept with the teacher's answer as training data (0: off)")
        parser.add_argument("--restarts", type=int,
                            help="students trained from different initialisations, best on the holdout kept")
        parser.add_argument("--pseudo-repeat", type=int,
                            help="with recorded queries: times each pseudo-sample and its path images are repeated")
        parser.add_argument("--bank-per-class", type=int,
                            help="recorded queried images per class added to the student's training set (0: none)")

    def config(self, profile: Profile) -> ZSDB3KDConfig:
        """This run's configuration: the profile's sizes with the constructor's options."""
        fields = ZSDB3KDConfig.__dataclass_fields__
        return ZSDB3KDConfig.for_profile(profile, **{k: v for k, v in self.options.items() if k in fields})

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
        if box is None or box.access != "decision":
            raise AccessDenied("ZSDB3KD needs a 'decision' box (top-1 class ids only).")
        cfg = self.config(ctx.profile)
        info = ctx.info
        q_start = box.queries
        synth = PseudoSampleSynthesizer(box, cfg, info.num_classes, info.image_shape, ctx.seed, ctx.device)
        result = synth.synthesize(cfg.per_class * info.num_classes, progress=ctx.progress)
        x, soft = result.images, result.targets
        y = result.extras["labels"]
        assert isinstance(y, torch.Tensor)
        bank = result.extras["bank"]
        assert bank is None or isinstance(bank, QueryBank)
        traj = result.extras["trajectory"]
        assert traj is None or isinstance(traj, torch.Tensor)
        # ``restarts`` students from different initialisations on the same data and holdout; the best on the holdout
        student, fit_res, transfer_size = None, None, len(result)
        restart_holdout: list[float] = []
        for r in range(max(1, cfg.restarts)):
            candidate = ctx.new_student(seed_offset=1009 * r)
            cand_fit, cand_size = train_on_pseudo_samples(candidate, x, soft, y, cfg, ctx, box=box, bank=bank, trajectory=traj,
                                               desc="ZSDB3KD student" + (f" ({r + 1}/{cfg.restarts})"
                                                                         if cfg.restarts > 1 else ""))
            restart_holdout.append(float(cand_fit.best_val_acc or 0.0))
            if fit_res is None or (cand_fit.best_val_acc or 0.0) > (fit_res.best_val_acc or 0.0):
                student, fit_res, transfer_size = candidate, cand_fit, cand_size
        assert student is not None and fit_res is not None
        method_queries = box.queries - q_start
        # intermediate students for the accuracy-against-iterations/queries curve (own phase, not in method_queries)
        curve: list[dict[str, Any]] = []
        for cp in result.extras["checkpoints"]:  # type: ignore[union-attr]
            before = box.queries
            with box.phase("accuracy curve"):
                cp_soft, _ = pseudo_sample_soft_labels(box, cp["images"], y, info.num_classes, cfg.label_directions,
                                                       cfg.tau, ctx.seed)
                cp_student = ctx.new_student()
                cp_fit, _ = train_on_pseudo_samples(cp_student, cp["images"], cp_soft, y, cfg, ctx,
                                                 desc=f"student @ iteration {cp['iteration']}", box=box,
                                                 phase="accuracy curve", bank=bank, upto=cp["box_queries"],
                                                 trajectory=None if traj is None else traj[: cp["iteration"]])
            curve.append({"iteration": cp["iteration"], "queries": int(cp["queries"] + box.queries - before),
                          "student": cp_student, "holdout_acc": cp_fit.best_val_acc})
        hist = result.extras["history"]
        curve.append({"iteration": cfg.iterations, "queries": method_queries, "student": student,
                      "holdout_acc": fit_res.best_val_acc})
        extras = {
            "config": asdict(cfg), "best_epoch": fit_res.best_epoch, "init_draws": result.extras["init_draws"],
            "init_hits_per_class": result.extras["init_hits_per_class"],
            "generation_queries": result.extras["generation_queries"],
            "label_queries": result.extras["label_queries"], "method_queries": method_queries,
            "mixup_queries": box.queries_by_phase.get("relabel mixup", 0),
            "bank_size": len(bank) if bank is not None else 0, "restart_holdout_acc": restart_holdout,
            "queries_per_sample": method_queries / max(1, len(result)),
            "mean_distance_by_iteration": [h["mean_distance"] for h in hist],  # type: ignore[index]
            "curve": [{k: v for k, v in row.items() if k != "student"} for row in curve],
        }
        artifacts = {"images": x, "soft_labels": soft, "labels": y, "snapshots": result.snapshots,
                     "history": hist, "distances": result.extras["distances"],
                     "nearest_distance": result.extras["nearest_distance"], "curve": curve, "synthesizer": synth}
        # the transfer set: every distinct teacher-labelled image the student trains on (pseudo-samples, their
        # verified paths and the recorded queries drawn from the bank), not just the pseudo-samples
        extras["pseudo_samples"] = len(result)
        selection = "teacher-labelled holdout of the pseudo-samples" + \
            (" and of recorded queries" if bank is not None and cfg.bank_per_class > 0 else "")
        return DistillOutput(student, transfer_size, fit_res.best_val_acc,
                             selection=selection, history=fit_res.history,
                             extras=extras, artifacts=artifacts)
