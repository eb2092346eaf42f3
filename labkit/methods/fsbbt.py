"""FS-BBT: black-box few-shot KD with MixUp and a CVAE (Nguyen et al., ECCV 2022).

The teacher is a *score* box and the method sees only unlabeled images. It builds
its transfer set from three ingredients, every image of it labelled by the teacher:

1. ``few-shot``: N class-balanced unlabeled images (2000 in the paper; the runner
   picks them from the labels it keeps hidden, see
   :attr:`~labkit.methods.base.MethodData.balanced_subset`), each queried once.
2. ``mixup``: ``nomixup`` pairs drawn by shuffling, λ ~ Beta(1, 1) rounded to
   2 decimals; λ ≤ 0.05 or λ ≥ 0.95 (near-copies of a real image) are dropped,
   x̃ = λ·x₁ + (1 − λ)·x₂ is queried for the rest.
3. ``cvae``: a conditional VAE (:mod:`labkit.synthesis.cvae`) trained on the N images,
   conditioned on the teacher's argmax, decodes as many images as MixUp did not
   keep (``cvae_count`` overrides), half from z ~ N(0, I) and half from
   z ~ U[−3, 3]² (out of distribution); each is queried. With all three on, the
   method spends exactly N + ``nomixup`` queries.

The student minimises cross-entropy against the teacher's probability vectors
(loss ``"soft-ce"``) with small random shifts and rotations and online MixUp of
half of each batch. A seeded 10% of the transfer set, labelled by the teacher's
argmax, is held out to select the epoch (never the test set); the reported
transfer-set size counts the other 90%.

Lab differences from the paper: smaller ``nomixup`` and fewer CVAE/student epochs
in the smoke and laptop profiles (see ``docs/methods/fsbbt.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from labkit.core.blackbox import BlackBox
from labkit.core.config import MethodConfig, option
from labkit.core.errors import AccessDenied, ConfigError
from labkit.core.losses import build_loss
from labkit.core.train import BatchHook, random_affine, split_holdout
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.cvae import CVAEBase, balanced_classes, build_cvae, hybrid_latents, train_cvae

#: the paper's ``nomixup`` (synthetic images in total) per data set
PAPER_NOMIXUP: dict[str, int] = {"mnist": 24_000, "fashion-mnist": 48_000, "cifar10": 40_000}
#: the ingredients in transfer-set order; each one's queries are counted in the box phase of the same name
INGREDIENT_ORDER: tuple[str, ...] = ("few-shot", "mixup", "cvae")


class FewShotConfigError(ConfigError):
    """An FS-BBT setting that cannot work (too many shots for the pool, a bad threshold, ...)."""


# --------------------------------------------------------------------------- MixUp

def round_lambdas(lam: torch.Tensor, decimals: int = 2) -> torch.Tensor:
    """λ rounded to ``decimals`` places (float64, so 0.05 stays 0.05)."""
    scale = 10 ** decimals
    return torch.round(lam.double() * scale) / scale


def mixup_keep_mask(lam: torch.Tensor, low: float = 0.05, high: float = 0.95, decimals: int = 2) -> torch.Tensor:
    """True where a (rounded) λ lies strictly inside (low, high): λ ≤ low or λ ≥ high are dropped.

    The comparison is done on integer hundredths, so floating-point noise never
    decides whether λ = 0.05 is kept.
    """
    scale = 10 ** decimals
    k = torch.round(lam.double() * scale).long()
    return (k > round(low * scale)) & (k < round(high * scale))


def sample_mixup_lambdas(n: int, generator: torch.Generator | None = None, low: float = 0.05, high: float = 0.95,
                         decimals: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of λ ~ Beta(1, 1) (= U(0, 1)) rounded to ``decimals``; returns ``(λ, keep)``."""
    lam = round_lambdas(torch.rand(n, generator=generator, dtype=torch.float64), decimals)
    return lam, mixup_keep_mask(lam, low, high, decimals)


def mixup_pairs(n_images: int, n_pairs: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs by shuffling: per round a random permutation p, pairs (p[k], p[k+1 mod N]).

    Every image appears once as the first and once as the second member per round,
    and an image is never paired with itself (for N ≥ 2).
    """
    if n_images < 2:
        raise FewShotConfigError("MixUp needs at least 2 images to pair")
    rounds = -(-n_pairs // n_images)
    perms = torch.stack([torch.randperm(n_images, generator=generator) for _ in range(rounds)])
    first, second = perms.flatten(), perms.roll(-1, dims=1).flatten()
    return first[:n_pairs], second[:n_pairs]


def mix(x1: torch.Tensor, x2: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """λ·x₁ + (1 − λ)·x₂ with one λ per row, broadcast over the other dimensions."""
    lam = lam.to(device=x1.device, dtype=x1.dtype).view(-1, *([1] * (x1.dim() - 1)))
    return lam * x1 + (1 - lam) * x2


@dataclass
class MixupSet:
    """The MixUp images FS-BBT keeps, with their λ and parent indices, and how many draws were dropped."""

    images: torch.Tensor  # kept mixes, on the images' device
    lam: torch.Tensor  # their λ (float64, rounded)
    first: torch.Tensor  # index of x₁ in the few-shot set
    second: torch.Tensor  # index of x₂
    drawn: int  # λ draws in total (= nomixup)
    all_lam: torch.Tensor  # every drawn λ, kept or not (for histograms)

    @property
    def kept(self) -> int:
        """Number of mixes kept."""
        return int(self.images.shape[0])

    @property
    def dropped(self) -> int:
        """Number of draws dropped by the thresholds (the CVAE makes up for these)."""
        return self.drawn - self.kept


def make_mixup_set(images: torch.Tensor, total: int, generator: torch.Generator | None = None,
                   low: float = 0.05, high: float = 0.95, decimals: int = 2) -> MixupSet:
    """Draw ``total`` (pair, λ) and keep the mixes whose rounded λ lies inside (low, high)."""
    if not 0.0 <= low < high <= 1.0:
        raise FewShotConfigError(f"MixUp thresholds need 0 ≤ low < high ≤ 1, got low={low}, high={high}")
    if total <= 0:
        empty = images[:0]
        none = torch.zeros(0, dtype=torch.long)
        return MixupSet(empty, torch.zeros(0, dtype=torch.float64), none, none, 0, torch.zeros(0, dtype=torch.float64))
    first, second = mixup_pairs(images.shape[0], total, generator)
    lam, keep = sample_mixup_lambdas(total, generator, low, high, decimals)
    first, second, lam_kept = first[keep], second[keep], lam[keep]
    dev = images.device
    mixed = mix(images[first.to(dev)], images[second.to(dev)], lam_kept).clamp_(0.0, 1.0)
    return MixupSet(mixed, lam_kept, first, second, total, lam)


def online_mixup_hook(share: float = 0.5) -> BatchHook:
    """A :func:`~labkit.core.train.fit` batch hook: mix a random ``share`` of each batch with a shuffled partner.

    Each chosen image gets its own λ ~ U(0, 1); its soft target is mixed with the
    same λ. The teacher is not queried for these (they are the student's
    regularisation, not new transfer images).
    """
    def hook(x: torch.Tensor, targets: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        b = x.shape[0]
        partner = torch.randperm(b, generator=gen).to(x.device)
        lam = torch.rand(b, generator=gen).to(x.device)
        chosen = (torch.rand(b, generator=gen) < share).to(x.device)
        lam = torch.where(chosen, lam, torch.ones_like(lam))
        x_mixed = mix(x, x[partner], lam)
        t_mixed = tuple(mix(t.float(), t[partner].float(), lam) if t.is_floating_point() else t for t in targets)
        return x_mixed, t_mixed
    return hook


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class FSBBTConfig(MethodConfig):
    """Sizes and settings of FS-BBT (see the module doc for what each ingredient does)."""

    PROFILES = {
        "smoke": {"shots": 200, "nomixup": 800, "cvae_epochs": 10, "epochs": 2, "batch_size": 32, "lr": 3e-3},
        "laptop": {"shots": 2000, "nomixup": 12_000, "cvae_epochs": 100, "epochs": 15, "batch_size": 128, "lr": 3e-3},
        "paper": {"shots": 2000, "nomixup": 24_000, "cvae_epochs": 200, "epochs": 40, "batch_size": 256, "lr": 2e-3},
    }
    TITLE = "FS-BBT option"
    INGREDIENTS = {
        "few-shot": "the N class-balanced unlabeled images, answered by the box (the paper's)",
        "mixup": "MixUp of pairs of few-shot images, λ inside (0.05, 0.95), answered by the box (the paper's)",
        "cvae": "CVAE images decoded from N(0, I) and U[-3, 3]² latents, answered by the box (the paper's)",
    }

    shots: int = option(help="N, class-balanced few-shot images")
    nomixup: int = option(help="synthetic images in total: MixUp kept + CVAE")
    cvae_epochs: int = option(help="CVAE training epochs")
    epochs: int = option(help="student epochs")
    batch_size: int = option(help="student batch size")
    lr: float = option(help="student learning rate (Adam, one-cycle)")
    ingredients: tuple[str, ...] = option(INGREDIENT_ORDER, help="parts of the transfer set to build")
    mixup_low: float = option(0.05, help="MixUp drops λ at or below this")
    mixup_high: float = option(0.95, help="MixUp drops λ at or above this")
    cvae_count: int | None = option(None, help="CVAE images (default: nomixup minus the MixUp images kept)")
    cvae_batch_size: int = option(128, help="CVAE batch size")
    cvae_lr: float = option(3e-3, help="CVAE learning rate")
    latent_dim: int = option(2, help="CVAE latent dimensions")
    ood_fraction: float = option(0.5, help="share of CVAE latents drawn from U[-r, r]^d (out of distribution)")
    ood_range: float = option(3.0, help="r of the out-of-distribution latents")
    online_mixup: float = option(0.5, help="share of each student batch mixed online (0 = off)")
    max_shift: float = option(2.0, help="student augmentation: largest shift in pixels")
    max_rotation: float = option(10.0, help="student augmentation: largest rotation in degrees")
    holdout_fraction: float = option(0.1, help="teacher-labelled share of the transfer set held out for selection")

    @classmethod
    def profile_values(cls, profile: str, dataset: str | None = None) -> dict[str, Any]:
        """The table's values; the paper profile takes the paper's ``nomixup`` for the data set."""
        values = super().profile_values(profile, dataset)
        if profile == "paper":
            values["nomixup"] = PAPER_NOMIXUP.get(dataset or "", values["nomixup"])
        return values

    def validate(self) -> None:
        """Raise :class:`FewShotConfigError` for settings that cannot work."""
        if "few-shot" not in self.ingredients:
            raise FewShotConfigError("FS-BBT cannot leave out 'few-shot': the MixUp and CVAE images are made from the "
                                     "few-shot images and the CVAE is conditioned on the teacher's answers on them")
        if self.shots < 2:
            raise FewShotConfigError(f"shots must be at least 2 (got {self.shots})")
        if self.nomixup < 0 or (self.cvae_count is not None and self.cvae_count < 0):
            raise FewShotConfigError("nomixup and cvae_count must be non-negative")
        if self.cvae_count and "cvae" not in self.ingredients:
            raise FewShotConfigError(f"cvae_count={self.cvae_count} needs the 'cvae' ingredient")
        if not 0.0 <= self.mixup_low < self.mixup_high <= 1.0:
            raise FewShotConfigError(f"need 0 ≤ mixup_low < mixup_high ≤ 1, got {self.mixup_low}, {self.mixup_high}")
        if not 0.0 < self.holdout_fraction < 0.5:
            raise FewShotConfigError("holdout_fraction must lie in (0, 0.5)")
        if not 0.0 <= self.online_mixup <= 1.0 or not 0.0 <= self.ood_fraction <= 1.0:
            raise FewShotConfigError("online_mixup and ood_fraction are shares in [0, 1]")


def label_counts(probs: torch.Tensor, num_classes: int) -> list[int]:
    """How many rows of ``probs`` have each class as their argmax."""
    if probs.shape[0] == 0:
        return [0] * num_classes
    return torch.bincount(probs.argmax(1), minlength=num_classes).cpu().tolist()


@dataclass
class CVAEPart:
    """The CVAE ingredient: the model, its history, the decoded images and the box's answers."""

    model: CVAEBase | None
    history: list[dict[str, float]]
    images: torch.Tensor
    probs: torch.Tensor
    latents: torch.Tensor
    is_ood: torch.Tensor
    classes: torch.Tensor


def make_cvae_part(box: BlackBox, x_few: torch.Tensor, p_few: torch.Tensor, count: int, cfg: FSBBTConfig,
                   gen: torch.Generator, ctx: RunContext) -> CVAEPart:
    """Train the CVAE on the few-shot images (conditioned on the teacher's argmax), decode ``count`` images, query."""
    dev = x_few.device
    if count <= 0:
        return CVAEPart(None, [], x_few[:0], p_few[:0], torch.zeros(0, cfg.latent_dim, device=dev),
                        torch.zeros(0, dtype=torch.bool, device=dev), torch.zeros(0, dtype=torch.long, device=dev))
    torch.manual_seed(ctx.seed + 1)
    cvae = build_cvae(tuple(x_few.shape[1:]), ctx.info.num_classes, cfg.latent_dim).to(dev)
    trained = train_cvae(cvae, x_few, p_few.argmax(1), epochs=cfg.cvae_epochs, batch_size=cfg.cvae_batch_size,
                         lr=cfg.cvae_lr, seed=ctx.seed, progress=ctx.progress, desc="FS-BBT CVAE")
    z, is_ood = hybrid_latents(count, cfg.latent_dim, ood_fraction=cfg.ood_fraction, ood_range=cfg.ood_range,
                               generator=gen, device=dev)
    y = balanced_classes(count, ctx.info.num_classes, device=dev)
    x = cvae.generate(z, y)
    with box.phase("cvae"):
        p = box(x)
    return CVAEPart(cvae, trained.history, x, p, z, is_ood, y)


# --------------------------------------------------------------------------- the method

@register_method
class FSBBT(DistillationMethod[FSBBTConfig]):
    """FS-BBT (Nguyen et al., ECCV 2022): few-shot score-box KD with MixUp and CVAE images.

    Queries N (few-shot) + the kept MixUp and the CVAE images (N + nomixup with every
    ingredient on); selects the student's epoch on a teacher-labelled holdout of them.
    """

    name = "fsbbt"
    access = "score"
    data_access = "unlabeled"
    summary = "FS-BBT: N few-shot images + MixUp + CVAE images, all labelled by a score box"
    config_class = FSBBTConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Build the few-shot, MixUp and CVAE images, have the box answer each, hold out 10% for selection."""
        if box is None or box.access != "score":
            raise AccessDenied("FS-BBT needs a score-based box (probability vectors); "
                               f"got {'no box' if box is None else repr(box.access) + ' access'}. "
                               "Build one with BlackBox(model, access='score').")
        if data.unlabeled is None:
            raise FewShotConfigError("FS-BBT needs unlabeled training images (data_access='unlabeled').")
        cfg = self.config(ctx)
        pool = data.unlabeled
        if cfg.shots > pool.shape[0]:
            raise FewShotConfigError(f"asked for {cfg.shots} shots but only {pool.shape[0]} unlabeled images are "
                                     "available; lower --shots (or use a profile without a train limit)")
        dev, num_classes = ctx.device, ctx.info.num_classes
        gen = torch.Generator().manual_seed(ctx.seed)

        # few-shot set
        if data.balanced_subset is not None:
            idx, how = data.balanced_subset(cfg.shots), "class-balanced (picked by the runner)"
        else:
            idx, how = torch.randperm(pool.shape[0], generator=gen)[:cfg.shots], "random (no balanced subset given)"
        x_few = pool[idx.to(pool.device)].to(dev)
        with box.phase("few-shot"):
            p_few = box(x_few)

        # MixUp
        mixup = make_mixup_set(x_few, cfg.nomixup if cfg.uses("mixup") else 0, gen, cfg.mixup_low, cfg.mixup_high)
        p_mix = p_few[:0]
        if mixup.kept:
            with box.phase("mixup"):
                p_mix = box(mixup.images)

        # CVAE: as many images as the synthetic budget has left, unless cvae_count says otherwise
        n_cvae = 0 if not cfg.uses("cvae") else cfg.nomixup - mixup.kept if cfg.cvae_count is None else cfg.cvae_count
        cvae = make_cvae_part(box, x_few, p_few, n_cvae, cfg, gen, ctx)

        # the transfer set, with a teacher-labelled holdout for selecting the epoch
        parts = {"few-shot": (x_few, p_few), "mixup": (mixup.images, p_mix), "cvae": (cvae.images, cvae.probs)}
        names = [n for n in INGREDIENT_ORDER if cfg.uses(n)]
        x_all = torch.cat([parts[n][0] for n in names])
        p_all = torch.cat([parts[n][1] for n in names])
        source = torch.cat([torch.full((len(parts[n][0]),), k, dtype=torch.long) for k, n in enumerate(names)]).to(dev)
        keep, hold = split_holdout(x_all.shape[0], cfg.holdout_fraction, ctx.seed, device=dev)
        held = torch.bincount(source[hold].cpu(), minlength=len(names)).tolist()
        ingredients = [Ingredient(n, phases=(n,), holdout_rows=int(h)) for n, h in zip(names, held)]
        augment = random_affine(cfg.max_shift, cfg.max_rotation) if ctx.info.is_image else None
        hook = online_mixup_hook(cfg.online_mixup) if cfg.online_mixup > 0 else None
        recipe = TrainRecipe(cfg.epochs, cfg.batch_size, cfg.lr, augment=augment, batch_hook=hook,
                             desc="FS-BBT student")
        extras: dict[str, Any] = {
            "config": cfg.as_dict(), "shots": int(x_few.shape[0]), "few_shot_selection": how,
            "mixup_drawn": mixup.drawn, "mixup_kept": mixup.kept, "mixup_dropped": mixup.dropped,
            "cvae_images": int(cvae.images.shape[0]), "cvae_ood_images": int(cvae.is_ood.sum()),
            "synthetic_images": int(mixup.kept + cvae.images.shape[0]),
            "cvae_final_loss": cvae.history[-1]["loss"] if cvae.history else None,
            "label_counts": {n: label_counts(parts[n][1], num_classes) for n in INGREDIENT_ORDER},
        }
        artifacts: dict[str, Any] = {
            "few_shot_images": x_few, "few_shot_probs": p_few, "mixup": mixup, "mixup_probs": p_mix,
            "cvae": cvae.model, "cvae_history": cvae.history, "cvae_images": cvae.images, "cvae_probs": cvae.probs,
            "cvae_latents": cvae.latents, "cvae_is_ood": cvae.is_ood, "cvae_classes": cvae.classes,
            "sources": source, "config": cfg,
        }
        return TransferSet(x_all[keep], (p_all[keep],), "probabilities", build_loss("soft-ce"), recipe, ingredients,
                           source=source[keep], holdout=(x_all[hold], p_all[hold].argmax(1)),
                           selection=f"teacher-labelled holdout of the transfer set ({hold.numel()} images)",
                           extras=extras, artifacts=artifacts)
