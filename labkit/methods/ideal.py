"""IDEAL (Zhang et al., ICLR 2023): query-efficient, data-free distillation from a decision-only teacher.

**The paper's recipe** (and its public code, SonyResearch/IDEAL). For each of R rounds:

1. *Generate, at no query cost.* Re-initialise the generator G and train it for ``g_steps`` Adam steps
   (``lr_g``, β = (0.5, 0.999)) against the current student S only, on one fixed batch of latent codes z:
   ``L_G = CE(S(aug(G(z))), y) + λ·L_info``, the targets y cycling through the classes. ``aug`` is a random
   crop (padding 4) and a horizontal flip. The batch of the step with the lowest loss is kept.
2. *Query once.* Ask the teacher for the class ids of those ``per_round`` images (one box call).
3. *Train.* One pass of S over every image labelled so far, cross-entropy on the teacher's class ids
   (SGD, lr 0.01, momentum 0.9, weight decay 5e-4).

``L_info`` (``info_mode``): ``"paper"`` is the class-balance (information-entropy) term on the batch-mean
prediction p̄, ``Σ_c p̄_c log p̄_c``, minimised when the student spreads the batch over every class.
``"authors"`` is what the public code computes instead, the mean of ``p log p`` over every sample and class
(it raises each sample's own entropy). λ = ``info_weight`` (5 in the public code).

**Where the lab differs** (experiment notes: ``docs/methods/ideal.md``):

* *Queries.* Each generated image is asked once and its answer kept. The public code's training pass asks
  the teacher again for every pooled image (after a random flip) in every round, ``per_round·R(R+1)/2``
  queries in all, while the paper counts ``per_round·R``.
* *Selection.* ``holdout_fraction`` of every round's images are labelled in the same call but kept out of
  training: a teacher-labelled holdout. The reported student is a fresh student trained by the lab's one
  trainer (:func:`labkit.methods.base.train_student`) on every labelled image, its epoch chosen on that
  holdout. The round-trained student (the "guide") only steers the generator; the public code reports the
  guide at its best *test* epoch.
* *Budget.* ``queries`` (``--queries``) is the whole teacher budget, holdout included: R = queries // (per_round
  + round samples).
* *Round samples* (ingredient ``round-samples``, off unless named; bench row ``ideal+round-samples``): once a
  round's G is trained, ``round_samples`` more images from fresh latents go through it and are labelled in a second
  box call of the round (phase ``teacher labels (round samples)``). They add queries but almost no compute (G is
  trained once per round either way). Not in the paper.
* *Student augmentation* (``student_augment``, off): shifts and flips while the reported student trains, keeping
  the teacher's label. Measured to hurt on the pooled holdout (generated images sit near boundaries, where a shift
  changes the answer); kept as a switch for that ablation.
* *Speed.* G and the guide run in channels-last memory (same arithmetic; G's steps about 1.6x faster on two CPU
  cores).
* *Sizes* per profile. Laptop: a narrow G (width 8) for two CPU cores, ``lr_g`` 1e-2 and the public code's
  information term (chosen on a pooled teacher-labelled holdout). The paper profile uses the public code's MNIST
  settings (250 images × 100 rounds, 30 G steps at 1e-3, nz 256, width 64) and the paper's information term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox
from labkit.core.config import MethodConfig, option
from labkit.core.errors import AccessDenied, ConfigError
from labkit.core.losses import build_loss
from labkit.core.train import random_affine
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer
from labkit.synthesis.generators import LatentGenerator

PHASE = "teacher labels"  # the query call of every round (the best batch)
ROUND_SAMPLES_PHASE = "teacher labels (round samples)"  # the lab addition's second call of a round
INFO_MODES = ("paper", "authors")

_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"queries": 600, "per_round": 100, "g_steps": 3, "nz": 32, "g_width": 8, "epochs": 3,
              "batch_size": 64, "lr": 2e-3, "guide_batch": 64},
    # two CPU cores: G's steps dominate (about 0.45 ms per image and step at width 8); lr_g, g_steps and the
    # information term chosen on a pooled teacher-labelled holdout of the candidates' images: docs/selection.md
    "laptop": {"queries": 20_000, "per_round": 500, "g_steps": 30, "nz": 64, "g_width": 8, "lr_g": 1e-2,
               "info_mode": "authors", "epochs": 15, "batch_size": 128, "lr": 2e-3, "guide_batch": 128},
    # the public code's MNIST command: 100 rounds of 250 images, 30 G steps, nz 256, ngf 64
    "paper": {"queries": 25_000, "per_round": 250, "g_steps": 30, "nz": 256, "g_width": 64, "epochs": 40,
              "batch_size": 256, "lr": 1e-3, "guide_batch": 250},
}


@dataclass(frozen=True)
class IDEALConfig(MethodConfig):
    """Sizes and settings of IDEAL (per-profile table ``PROFILES``; override any field by keyword)."""

    PROFILES = _PROFILES
    TITLE = "ideal option"
    #: ``paper``: the mechanism alone; ``round-samples``: plus the lab's addition, with its own per-profile sizes
    VARIANTS = {"paper": {"ingredients": ("generated",)},
                "round-samples": {"ingredients": ("generated", "round-samples")}}
    #: the addition's sizes: 40 laptop rounds of 500 + 1,500 images (chosen on a pooled teacher-labelled holdout,
    #: docs/selection.md); smoke keeps CI fast; paper keeps the public code's rounds and adds three draws per image
    VARIANT_PROFILES = {"round-samples": {"smoke": {"round_samples": 100, "queries": 1_200},
                                          "laptop": {"round_samples": 1_500, "queries": 80_000},
                                          "paper": {"round_samples": 750, "queries": 100_000}}}
    INGREDIENTS = {"generated": "images from a generator trained against the student, one teacher query each",
                   "round-samples": "a lab addition: more images from each round's trained generator, with fresh "
                                    "latents, labelled in a second call of the round"}

    queries: int = option(help="teacher queries in all (holdout included); rounds = queries // (per_round + the "
                               "round samples, if on)")
    per_round: int = option(help="images of each round's best batch, labelled by the teacher in one box call")
    g_steps: int = option(help="Adam steps of the (re-initialised) generator per round, no teacher queries")
    nz: int = option(help="latent size of the generator")
    g_width: int = option(help="generator width (channels of its last hidden layer)")
    epochs: int = option(help="epochs of the reported student (fresh, on every labelled image)")
    batch_size: int = option(help="batch size of the reported student")
    lr: float = option(help="learning rate of the reported student")
    guide_batch: int = option(help="batch size of the round-trained guide student")
    lr_g: float = option(1e-3, help="generator learning rate (Adam, betas 0.5/0.999)")
    guide_lr: float = option(0.01, help="guide student learning rate (SGD, momentum 0.9, weight decay 5e-4)")
    info_weight: float = option(5.0, help="weight λ of the information (class-balance) term")
    reset_generator: bool = option(True, help="re-initialise G every round (the paper); False keeps training one G "
                                              "across rounds (a lab option, fewer G steps per round)")
    info_mode: str = option("paper", choices=INFO_MODES,
                            help="paper: balance of the batch-mean prediction; authors: mean p·log p (public code)")
    holdout_fraction: float = option(0.1, help="share of every round's labelled images kept out for selection")
    snapshot_per_class: int = option(2, help="images per class kept from every round (notebook 09's slider)")
    curve_points: int = option(4, help="rounds at which the guide student's weights are kept (accuracy curve)")
    round_samples: int = option(0, help="images per round of the 'round-samples' ingredient (a lab addition)")
    student_augment: bool = option(False, help="a lab addition: random shifts (±2 px) and flips while the reported "
                                               "student trains (the teacher's label is kept)")
    ingredients: tuple[str, ...] = option(("generated",), help="parts of the transfer set")
    variant: str = option("paper", choices=tuple(VARIANTS),
                          help="paper: the mechanism alone; round-samples: plus the lab's round samples, at the "
                               "profile's sizes for them")

    @property
    def extra_per_round(self) -> int:
        """Round samples per round (0 unless the 'round-samples' ingredient is on)."""
        return self.round_samples if "round-samples" in self.ingredients else 0

    @property
    def images_per_round(self) -> int:
        """Teacher queries per round: the best batch plus any round samples."""
        return self.per_round + self.extra_per_round

    @property
    def rounds(self) -> int:
        """Rounds the budget pays for."""
        return self.queries // self.images_per_round

    def validate(self) -> None:
        """A budget of at least one round, sizes >= 1, a known information term."""
        if min(self.per_round, self.g_steps, self.nz, self.g_width, self.guide_batch) < 1:
            raise ConfigError("per_round, g_steps, nz, g_width and guide_batch must be >= 1")
        if "generated" not in self.ingredients:
            raise ConfigError("IDEAL's transfer set needs its 'generated' ingredient (the paper's best batches)")
        if "round-samples" in self.ingredients and self.round_samples < 1:
            raise ConfigError("the 'round-samples' ingredient needs round_samples >= 1 (images per round)")
        if self.queries < self.images_per_round:
            raise ConfigError(f"queries={self.queries} pays for no round of {self.images_per_round} images; "
                              "raise --queries or lower --per-round")
        if not 0 < self.holdout_fraction < 0.5:
            raise ConfigError("holdout_fraction must lie in (0, 0.5)")
        if self.info_mode not in INFO_MODES:
            raise ConfigError(f"unknown info_mode {self.info_mode!r}; choose one of {INFO_MODES}")
        if self.info_weight < 0:
            raise ConfigError("info_weight must be >= 0")


# --------------------------------------------------------------------------- the generator's loss
def information_loss(student_logits: torch.Tensor, mode: str = "paper") -> torch.Tensor:
    """IDEAL's information term. ``paper``: ``Σ_c p̄_c log p̄_c`` of the batch-mean prediction p̄ (−entropy of
    the class balance; minimal when the batch covers every class equally). ``authors``: ``mean(p log p)`` over
    every sample and class, as the public code computes it."""
    p = F.softmax(student_logits, dim=1)
    if mode == "paper":
        mean = p.mean(0)
        return (mean * torch.log(mean.clamp_min(1e-12))).sum()
    if mode == "authors":
        return (p * torch.log(p.clamp_min(1e-12))).mean()
    raise ConfigError(f"unknown info_mode {mode!r}; choose one of {INFO_MODES}")


def generator_loss(student_logits: torch.Tensor, targets: torch.Tensor, info_weight: float = 5.0,
                   mode: str = "paper") -> torch.Tensor:
    """``CE(S(x), y) + λ·L_info``: what the generator minimises each step (no teacher involved)."""
    return F.cross_entropy(student_logits, targets) + info_weight * information_loss(student_logits, mode)


def crop_and_flip(x: torch.Tensor, gen: torch.Generator, padding: int = 4) -> torch.Tensor:
    """A differentiable random crop (zero padding ``padding``) and horizontal flip, one draw per image."""
    n, _, h, w = x.shape
    shift = torch.randint(-padding, padding + 1, (n, 2), generator=gen, device=x.device).to(x.dtype)
    flip = torch.where(torch.rand(n, generator=gen, device=x.device) < 0.5, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = flip
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 2 * shift[:, 0] / w
    theta[:, 1, 2] = 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- the rounds
class IDEALSynthesizer(Synthesizer):
    """IDEAL's rounds: generate against the guide student, one teacher call, one guide pass over the pool.

    ``synthesize(n)`` runs ``n // per_round`` rounds (``n``: the query budget) and returns every generated
    image with the teacher's class id. ``extras`` holds per round the teacher's class counts, the generator's
    final loss and the guide's training loss, the round of every image (``round_of``), and the guide's weights
    at ``curve_points`` rounds (``curve``) with the queries spent by then.
    """

    def __init__(self, box: BlackBox, cfg: IDEALConfig, student_factory: Any, num_classes: int,
                 image_shape: tuple[int, int, int], seed: int = 0, device: torch.device | str | None = None) -> None:
        super().__init__(box, seed, device=device, decision_only="IDEAL")
        self.cfg = cfg
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.new_student = student_factory

    def curve_rounds(self, rounds: int) -> list[int]:
        """Rounds (1-based) after which the guide's weights are kept: evenly spread, the last one included."""
        k = max(0, min(self.cfg.curve_points, rounds))
        return sorted({max(1, int(round(rounds * (i + 1) / k))) for i in range(k)}) if k else []

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        cfg, box, c, dev = self.cfg, self.box, self.num_classes, self.device
        rounds = n // cfg.images_per_round
        gen = torch.Generator(device=dev).manual_seed(self.seed)
        # channels-last: G's convolutions and their backward through the guide run about 1.6x faster on two CPU
        # cores (95 vs 155 ms per step of 500 images at width 8, docs/methods/ideal.md) and on CUDA
        generator = LatentGenerator(cfg.nz, self.image_shape, cfg.g_width).to(dev)  # type: ignore[arg-type]
        generator.to(memory_format=torch.channels_last)
        guide: nn.Module = self.new_student().to(memory_format=torch.channels_last)
        opt_s = torch.optim.SGD(guide.parameters(), lr=cfg.guide_lr, momentum=0.9, weight_decay=5e-4)
        targets = torch.arange(cfg.per_round, device=dev) % c  # the classes in turn, as the public code
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        history: list[dict[str, Any]] = []
        snapshots: list[Snapshot] = []
        curve: list[dict[str, Any]] = []
        keep_curve = set(self.curve_rounds(rounds))
        snap_idx = torch.cat([(targets == k).nonzero().squeeze(1)[: cfg.snapshot_per_class] for k in range(c)])
        bar = tqdm(range(rounds), desc="IDEAL rounds", disable=not progress, leave=False)
        for r in bar:
            # 1. generate against the guide only (no teacher query)
            if cfg.reset_generator or r == 0:
                generator.reset_parameters()
            generator.train()
            guide.eval()
            for p in guide.parameters():
                p.requires_grad_(False)
            opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999))
            z = torch.randn(cfg.per_round, cfg.nz, generator=gen, device=dev)
            best_loss = torch.full((), math.inf, device=dev)
            best_x = torch.zeros((cfg.per_round,) + self.image_shape, device=dev)
            for _ in range(cfg.g_steps):
                opt_g.zero_grad(set_to_none=True)
                images = generator(z)
                loss = generator_loss(guide(crop_and_flip(images, gen)), targets, cfg.info_weight, cfg.info_mode)
                better = loss.detach() < best_loss  # kept on the device: no host sync per step
                best_x = torch.where(better, images.detach(), best_x)
                best_loss = torch.where(better, loss.detach(), best_loss)
                loss.backward()
                opt_g.step()
            for p in guide.parameters():
                p.requires_grad_(True)
            # 2. one teacher call for the round's images
            with box.phase(PHASE):
                labels = box(best_x.clamp(0, 1)).to(dev)
            if cfg.extra_per_round:  # the lab addition: more draws from this round's G, fresh latents, a second call
                with torch.no_grad():
                    more = generator(torch.randn(cfg.extra_per_round, cfg.nz, generator=gen, device=dev))
                with box.phase(ROUND_SAMPLES_PHASE):
                    more_labels = box(more.clamp(0, 1)).to(dev)
                best_x, labels = torch.cat([best_x, more]), torch.cat([labels, more_labels])
            xs.append(best_x)
            ys.append(labels)
            # 3. one pass of the guide over every image labelled so far
            guide_loss = self._guide_pass(guide, opt_s, torch.cat(xs), torch.cat(ys), gen)
            counts = torch.bincount(labels, minlength=c)
            history.append({"round": r + 1, "queries": (r + 1) * cfg.images_per_round, "g_loss": best_loss,
                            "guide_loss": guide_loss, "teacher_counts": counts})
            snapshots.append(Snapshot(r + 1, best_x[snap_idx].cpu(), targets[snap_idx].cpu()))  # the class aimed at
            if r + 1 in keep_curve:
                curve.append({"round": r + 1, "queries": (r + 1) * cfg.images_per_round,
                              "state": {k: v.detach().cpu().clone() for k, v in guide.state_dict().items()}})
        for h in history:  # one host transfer at the end, not one per round
            h["g_loss"] = float(h["g_loss"])
            h["guide_loss"] = float(h["guide_loss"])
            h["teacher_counts"] = h["teacher_counts"].tolist()
        round_of = torch.arange(rounds, device=dev).repeat_interleave(cfg.images_per_round)
        is_round_sample = (torch.arange(cfg.images_per_round, device=dev) >= cfg.per_round).repeat(rounds)
        return SynthesisResult(torch.cat(xs), torch.cat(ys), snapshots,
                               {"history": history, "curve": curve, "round_of": round_of, "rounds": rounds,
                                "is_round_sample": is_round_sample})

    def _guide_pass(self, guide: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
        """One epoch of the guide over the pool, cross-entropy on the teacher's ids; the mean loss (a tensor)."""
        guide.train()
        order = torch.randperm(x.shape[0], generator=gen, device=x.device)
        total = torch.zeros((), device=x.device)
        for s in range(0, x.shape[0], self.cfg.guide_batch):
            idx = order[s:s + self.cfg.guide_batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(guide(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total = total + loss.detach() * idx.numel()
        guide.eval()
        return total / x.shape[0]


def public_code_queries(per_round: int, rounds: int) -> int:
    """Teacher queries of the public code's loop: each round asks again for every pooled image (after a random
    flip), so round r asks ``per_round·r`` and R rounds ``per_round·R(R+1)/2``. The paper counts ``per_round·R``."""
    if per_round < 0 or rounds < 0:
        raise ConfigError("per_round and rounds must be >= 0")
    return per_round * rounds * (rounds + 1) // 2


def split_holdout(round_of: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask: ``fraction`` of every round's images (at least one), chosen at random, for the holdout."""
    gen = torch.Generator().manual_seed(seed + 17)
    keys = torch.rand(round_of.numel(), generator=gen).to(round_of.device)
    mask = torch.zeros(round_of.numel(), dtype=torch.bool, device=round_of.device)
    rounds = int(round_of.max()) + 1 if round_of.numel() else 0
    per = round_of.numel() // max(1, rounds)
    k = max(1, int(round(per * fraction)))
    for r in range(rounds):  # once per round, not per image
        idx = (round_of == r).nonzero().squeeze(1)
        mask[idx[keys[idx].argsort()[:k]]] = True
    return mask


@register_method
class IDEAL(DistillationMethod[IDEALConfig]):
    """IDEAL: a generator trained against the student, the teacher asked once per generated image (class ids)."""

    name = "ideal"
    access = "decision"
    data_access = "none"
    summary = "IDEAL (ICLR 2023): generator trained against the student, one hard-label query per image"
    config_class = IDEALConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Run the rounds through the box, then hand every labelled image (less the holdout) to the trainer."""
        if box is None or box.access != "decision":
            raise AccessDenied("IDEAL needs a 'decision' box (top-1 class ids only).")
        if not ctx.info.is_image:
            raise ConfigError(f"IDEAL generates images; {ctx.info.name!r} is not an image data set. "
                              "Pick fashion-mnist, mnist or cifar10.")
        cfg = self.config(ctx)
        if box.remaining is not None and box.remaining < cfg.per_round:
            raise ConfigError(f"the box's budget ({box.remaining:,} queries left) pays for no round of "
                              f"{cfg.per_round} images; raise the budget or lower --per-round")
        budget = cfg.queries if box.remaining is None else min(cfg.queries, box.remaining)
        synth = IDEALSynthesizer(box, cfg, lambda: ctx.new_student(seed_offset=101), ctx.info.num_classes,
                                 ctx.info.image_shape, ctx.seed, ctx.device)  # type: ignore[arg-type]
        res = synth.synthesize(budget, progress=ctx.progress)
        hold = split_holdout(res.extras["round_of"], cfg.holdout_fraction, ctx.seed)  # type: ignore[arg-type]
        x, y = res.images, res.targets
        history = res.extras["history"]
        extra: torch.Tensor = res.extras["is_round_sample"]  # type: ignore[assignment]
        ingredients = [Ingredient("generated", phases=(PHASE,), holdout_rows=int((hold & ~extra).sum()))]
        if cfg.extra_per_round:
            ingredients.append(Ingredient("round-samples", phases=(ROUND_SAMPLES_PHASE,),
                                          holdout_rows=int((hold & extra).sum())))
        augment = random_affine(max_shift=2.0, flip=True) if cfg.student_augment else None
        return TransferSet(
            x[~hold], (y[~hold],), "class-ids", build_loss("ce"),
            TrainRecipe(cfg.epochs, cfg.batch_size, cfg.lr, augment=augment, desc="IDEAL student"),
            ingredients, source=extra[~hold].long(),
            holdout=(x[hold], y[hold]), selection="teacher-labelled holdout of the generated images",
            extras={"config": cfg.as_dict(), "rounds": res.extras["rounds"], "history": history,
                    "classes_seen": int(sum(v > 0 for v in torch.bincount(y, minlength=ctx.info.num_classes)
                                            .tolist()))},
            artifacts={"snapshots": res.snapshots, "curve": res.extras["curve"], "history": history,
                       "images": x, "labels": y})
