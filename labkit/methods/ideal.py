"""IDEAL (Zhang et al., ICLR 2023): query-efficient, data-free distillation from a decision-only teacher.

R = ``queries // (per_round + round samples)`` rounds (``queries`` is the whole teacher budget, holdout included)
of :mod:`labkit.synthesis.ideal_rounds`: a generator trained against a guide student at no query cost, one box call
for its best batch, one pass of the guide over every image labelled so far. With the ``round-samples`` ingredient (a
lab addition), ``round_samples`` more images per round from the trained G are labelled in a second call: more
queries, almost no compute. ``holdout_fraction`` of every round's images are labelled in the same call but kept out
of training: that teacher-labelled holdout selects the epoch of the reported student, a fresh student trained by
:func:`labkit.methods.base.train_student` on the other labelled images; the guide only steers G.
``student_augment`` (off) shifts and flips the reported student's inputs; it was measured to hurt on the pooled
holdout (generated images sit near boundaries, where a shift changes the answer). ``variant="public-code"`` runs the
public code's loop (``requery_pool``: the whole pool asked again, flipped, every round), generator and information
term; the round-trained guide, the student the public code reports, is reported beside the fresh one (its weights
after every round go to the runner as ``reported_students``).

The paper's recipe, where the public code and the lab differ, the sizes per profile and the measurements:
``docs/methods/ideal.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from labkit.core.blackbox import PRECISIONS, BlackBox, bf16_available, resolve_precision
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.losses import build_loss
from labkit.core.train import random_affine
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import (
    REPORTED_STUDENTS,
    SYNTHESIS_PRECISION,
    DistillationMethod,
    MethodData,
    RunContext,
    register_method,
)
from labkit.synthesis.base import settings_from
from labkit.synthesis.generators import GENERATOR_INITS
from labkit.synthesis.ideal_rounds import (  # the names notebooks and exercises import from here, too
    INFO_MODES,
    PHASE,
    REQUERY_PHASE,
    ROUND_SAMPLES_PHASE,
    IDEALSynthesizer,
    RoundSettings,
    crop_and_flip,
    generator_loss,
    information_loss,
)

G_PRECISIONS = ("run", *PRECISIONS)  # "run": the run's synthesis precision; the others as for the box
ROUND_TRAINED = "round-trained"  # the guide student after each round, as the public code trains and reports it

__all__ = ["IDEAL", "ROUND_TRAINED", "IDEALConfig", "public_code_queries", "split_holdout", "IDEALSynthesizer",
           "RoundSettings", "crop_and_flip", "generator_loss", "information_loss"]

_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"queries": 600, "per_round": 100, "g_steps": 3, "nz": 32, "g_width": 8, "epochs": 3,
              "batch_size": 64, "lr": 2e-3, "guide_batch": 64},
    # two CPU cores: G's steps dominate (about 0.45 ms per image and step at width 8); lr_g, g_steps and the
    # information term chosen on a pooled teacher-labelled holdout of the candidates' images: docs/selection.md
    "laptop": {"queries": 20_000, "per_round": 500, "g_steps": 30, "nz": 64, "g_width": 8, "lr_g": 1e-2,
               "info_mode": "authors", "epochs": 15, "batch_size": 128, "lr": 2e-3, "guide_batch": 128},
    # a T4 (docs/cost.md): 2.5 times the laptop's queries, a generator four times as wide
    "gpu": {"queries": 50_000, "per_round": 500, "g_steps": 30, "nz": 64, "g_width": 32, "lr_g": 1e-2,
            "info_mode": "authors", "epochs": 30, "batch_size": 256, "lr": 2e-3, "guide_batch": 256},
    # the public code's MNIST command: 100 rounds of 250 images, 30 G steps, nz 256, ngf 64
    "paper": {"queries": 25_000, "per_round": 250, "g_steps": 30, "nz": 256, "g_width": 64, "epochs": 40,
              "batch_size": 256, "lr": 1e-3, "guide_batch": 250},
}


@dataclass(frozen=True)
class IDEALConfig(StudentRecipeConfig):
    """Sizes and settings of IDEAL (per-profile table ``PROFILES``; override any field by keyword)."""

    PROFILES = _PROFILES
    TITLE = "ideal option"
    #: ``paper``: the mechanism alone; ``round-samples``: plus the lab's addition, with its own per-profile sizes
    VARIANTS = {"paper": {"ingredients": ("generated",)},
                "round-samples": {"ingredients": ("generated", "round-samples")},
                # the public code's loop at its MNIST command's sizes (docs/methods/ideal.md): the teacher asked
                # again for every pooled image, flipped at random, every round; its generator and information term
                "public-code": {"ingredients": ("generated",), "requery_pool": True, "g_init": "authors",
                                "info_mode": "authors", "nz": 256, "g_width": 64, "lr_g": 1e-3, "per_round": 250,
                                "guide_batch": 250}}
    #: the addition's sizes: 40 laptop rounds of 500 + 1,500 images (chosen on a pooled teacher-labelled holdout,
    #: docs/selection.md); smoke keeps CI fast; paper keeps the public code's rounds and adds three draws per image
    VARIANT_PROFILES = {"round-samples": {"smoke": {"round_samples": 100, "queries": 1_200},
                                          "laptop": {"round_samples": 1_500, "queries": 80_000},
                                          "paper": {"round_samples": 750, "queries": 100_000}},
                        # re-queried pool: R rounds of P cost P·R(R+1)/2, so 100,000 (the cap) pay for 19
                        # rounds of 500 on the laptop (500 a round, not the code's 250, chosen on the labelled
                        # validation split: docs/selection.md) and 1,262,500 for the public code's 100 rounds of 250;
                        # the width-64 generator's steps run in bf16 where the CPU has it (kept by the precision rule)
                        "public-code": {"smoke": {"queries": 600, "per_round": 100, "g_width": 8, "nz": 32,
                                                  "guide_batch": 64},
                                        "laptop": {"queries": 100_000, "per_round": 500, "g_precision": "auto"},
                                        "paper": {"queries": 1_262_500}}}
    INGREDIENTS = {"generated": "images from a generator trained against the student, one teacher query each",
                   "round-samples": "a lab addition: more images from each round's trained generator, with fresh "
                                    "latents, labelled in a second call of the round"}

    INGREDIENT_SETTINGS = {"round-samples": ("round_samples",)}

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
    g_init: str = option("pytorch", choices=GENERATOR_INITS,
                         help="G's initialisation every round: pytorch (defaults) or authors (N(0, 0.02), the "
                              "public code's reset_model)")
    requery_pool: bool = option(False, help="the public code's loop: every round asks the teacher again for every "
                                            "pooled image, flipped at random (R rounds cost per_round·R(R+1)/2)")
    fused_upsample: bool = option(False, help="a speed option: G's two upsample+conv pairs as one stride-2 "
                                              "transposed conv each (the same function, 16 instead of 36 "
                                              "multiply-adds per pixel pair; the last bits differ, and IDEAL's "
                                              "outcome follows them: docs/speed.md)")
    g_precision: str = option("run", choices=G_PRECISIONS,
                              help="the generator steps' precision (they never reach the teacher): run (the run's "
                                   "synthesis precision), fp32, bf16 (autocast), or auto (bf16 where the device "
                                   "has it, fp32 elsewhere); the box keeps the run's precision")
    variant: str = option("paper", choices=tuple(VARIANTS),
                          help="paper: the mechanism alone; round-samples: plus the lab's round samples, at the "
                               "profile's sizes for them; public-code: the public code's loop and generator")

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
        return self.round_settings().rounds_for(self.queries)

    def validate(self) -> None:
        """A budget of at least one round, sizes >= 1, a known information term."""
        if min(self.per_round, self.g_steps, self.nz, self.g_width, self.guide_batch) < 1:
            raise ConfigError("per_round, g_steps, nz, g_width and guide_batch must be >= 1")
        if "generated" not in self.ingredients:
            raise ConfigError("IDEAL's transfer set needs its 'generated' ingredient (the paper's best batches)")
        if "round-samples" in self.ingredients and self.round_samples < 1:
            raise ConfigError("the 'round-samples' ingredient needs round_samples >= 1 (images per round)")
        if self.requery_pool and "round-samples" in self.ingredients:
            raise ConfigError("requery_pool (the public code's loop) and the 'round-samples' ingredient do not "
                              "combine; switch one off")
        if self.queries < self.images_per_round:
            raise ConfigError(f"queries={self.queries} pays for no round of {self.images_per_round} images; "
                              "raise --queries or lower --per-round")
        if not 0 < self.holdout_fraction < 0.5:
            raise ConfigError("holdout_fraction must lie in (0, 0.5)")
        if self.info_weight < 0:
            raise ConfigError("info_weight must be >= 0")

    def round_settings(self) -> RoundSettings:
        """The rounds' settings: G's and the guide's sizes, the information term, and the round samples if on."""
        return settings_from(RoundSettings, self)


def public_code_queries(per_round: int, rounds: int) -> int:
    """Teacher queries of the public code's loop: each round asks again for every pooled image (after a random
    flip), so round r asks ``per_round·r`` and R rounds ``per_round·R(R+1)/2``. The paper counts ``per_round·R``."""
    if per_round < 0 or rounds < 0:
        raise ConfigError("per_round and rounds must be >= 0")
    return per_round * rounds * (rounds + 1) // 2


def generator_precision(choice: str, ctx: RunContext) -> str:
    """The precision of IDEAL's generator steps for ``g_precision=choice``: the run's synthesis precision, or fp32 /
    bf16 for them alone (``auto``: bf16 where the device has it). bf16 on a CPU without it fails with what to do."""
    if choice == "run":
        return ctx.synthesis_precision
    if choice == "auto":
        return "bf16" if bf16_available(ctx.device) else "fp32"
    return resolve_precision(choice, ctx.device, "decision")


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
        assert box is not None  # check_box (the base class) refused a missing box
        if not ctx.info.is_image:
            raise ConfigError(f"IDEAL generates images; {ctx.info.name!r} is not an image data set. "
                              "Pick fashion-mnist, mnist or cifar10.")
        cfg = self.config(ctx)
        if box.remaining is not None and box.remaining < cfg.per_round:
            raise ConfigError(f"the box's budget ({box.remaining:,} queries left) pays for no round of "
                              f"{cfg.per_round} images; raise the budget or lower --per-round")
        budget = cfg.queries if box.remaining is None else min(cfg.queries, box.remaining)
        settings = replace(cfg.round_settings(), precision=generator_precision(cfg.g_precision, ctx))
        synth = IDEALSynthesizer(box, settings, lambda: ctx.new_student(seed_offset=101), ctx.info.num_classes,
                                 ctx.info.image_shape, ctx.seed, ctx.device)  # type: ignore[arg-type]
        res = synth.synthesize(budget, progress=ctx.progress)
        hold = split_holdout(res.extras["round_of"], cfg.holdout_fraction, ctx.seed)  # type: ignore[arg-type]
        x, y = res.images, res.targets
        history = res.extras["history"]
        extra: torch.Tensor = res.extras["is_round_sample"]  # type: ignore[assignment]
        ingredients = [Ingredient("generated", phases=(REQUERY_PHASE,) if cfg.requery_pool else (PHASE,),
                                  holdout_rows=int((hold & ~extra).sum()))]
        if cfg.extra_per_round:
            ingredients.append(Ingredient("round-samples", phases=(ROUND_SAMPLES_PHASE,),
                                          holdout_rows=int((hold & extra).sum())))
        augment = random_affine(max_shift=2.0, flip=True) if cfg.student_augment else None
        return TransferSet(
            x[~hold], (y[~hold],), "class-ids", build_loss("ce"),
            cfg.recipe(augment=augment, desc="IDEAL student"),
            ingredients, source=extra[~hold].long(),
            holdout=(x[hold], y[hold]), selection="teacher-labelled holdout of the generated images",
            extras={"config": cfg.as_dict(), "rounds": res.extras["rounds"], "history": history,
                    SYNTHESIS_PRECISION: settings.precision,
                    "distinct_inputs": res.extras["distinct_inputs"],
                    "classes_seen": int(sum(v > 0 for v in torch.bincount(y, minlength=ctx.info.num_classes)
                                            .tolist()))},
            artifacts={"snapshots": res.snapshots, "curve": res.extras["curve"], "history": history,
                       "images": x, "labels": y,
                       # the public code reports this student (at its best test round); the runner reports it
                       # beside the fresh one, test only, never for a choice
                       REPORTED_STUDENTS: {ROUND_TRAINED: res.extras["round_states"]}})
