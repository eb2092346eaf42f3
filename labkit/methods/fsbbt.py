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
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.losses import build_loss
from labkit.core.train import random_affine, split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.base import settings_from
from labkit.synthesis.cvae import CVAESettings, CVAESynthesizer
from labkit.synthesis.mixup import (  # the names notebooks and exercises import from here, too
    FewShotConfigError,
    MixupSet,
    MixUpSettings,
    MixUpSynthesizer,
    make_mixup_set,
    mix,
    mixup_keep_mask,
    mixup_pairs,
    online_mixup_hook,
    round_lambdas,
    sample_mixup_lambdas,
)

__all__ = ["FSBBT", "FSBBTConfig", "label_counts", "FewShotConfigError", "MixupSet", "MixUpSettings",
           "MixUpSynthesizer", "make_mixup_set", "mix", "mixup_keep_mask", "mixup_pairs", "online_mixup_hook",
           "round_lambdas", "sample_mixup_lambdas"]

#: the paper's ``nomixup`` (synthetic images in total) per data set
PAPER_NOMIXUP: dict[str, int] = {"mnist": 24_000, "fashion-mnist": 48_000, "cifar10": 40_000}
#: the ingredients in transfer-set order; each one's queries are counted in the box phase of the same name
INGREDIENT_ORDER: tuple[str, ...] = ("few-shot", "mixup", "cvae")


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class FSBBTConfig(StudentRecipeConfig):
    """Sizes and settings of FS-BBT (see the module doc for what each ingredient does)."""

    PROFILES = {
        "smoke": {"shots": 200, "nomixup": 800, "cvae_epochs": 10, "epochs": 2, "batch_size": 32, "lr": 3e-3},
        "laptop": {"shots": 2000, "nomixup": 12_000, "cvae_epochs": 100, "epochs": 15, "batch_size": 128, "lr": 3e-3},
        "gpu": {"shots": 2000, "nomixup": 24_000, "cvae_epochs": 200, "epochs": 30, "batch_size": 256, "lr": 3e-3},
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

    def mixup_settings(self) -> MixUpSettings:
        """The MixUp synthesizer's λ thresholds."""
        return MixUpSettings(low=self.mixup_low, high=self.mixup_high)

    def cvae_settings(self) -> CVAESettings:
        """The CVAE synthesizer's training (``cvae_epochs``, ``cvae_batch_size``, ``cvae_lr``) and latents."""
        return settings_from(CVAESettings, self, epochs=self.cvae_epochs, batch_size=self.cvae_batch_size,
                             lr=self.cvae_lr)


def label_counts(probs: torch.Tensor, num_classes: int) -> list[int]:
    """How many rows of ``probs`` have each class as their argmax."""
    if probs.shape[0] == 0:
        return [0] * num_classes
    return torch.bincount(probs.argmax(1), minlength=num_classes).cpu().tolist()


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
        assert box is not None  # check_box (the base class) refused a missing box
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

        # MixUp: nomixup (pair, λ) draws from gen; the box answers the mixes kept
        mixing = MixUpSynthesizer(box, x_few, cfg.mixup_settings(), num_classes, generator=gen)
        n_mix = cfg.nomixup if cfg.uses("mixup") else 0
        mixed = mixing.synthesize(n_mix, progress=ctx.progress) if n_mix > 0 else mixing.nothing()
        mixup, p_mix = mixed.extras["mixup"], mixed.targets
        assert isinstance(mixup, MixupSet)

        # CVAE: as many images as the synthetic budget has left, unless cvae_count says otherwise
        n_cvae = 0 if not cfg.uses("cvae") else cfg.nomixup - mixup.kept if cfg.cvae_count is None else cfg.cvae_count
        decoding = CVAESynthesizer(box, x_few, p_few, cfg.cvae_settings(), num_classes, generator=gen, seed=ctx.seed,
                                   desc="FS-BBT CVAE")
        cvae = decoding.synthesize(n_cvae, progress=ctx.progress) if n_cvae > 0 else decoding.nothing()
        cv = cvae.extras

        # the transfer set, with a teacher-labelled holdout for selecting the epoch
        parts = {"few-shot": (x_few, p_few), "mixup": (mixup.images, p_mix), "cvae": (cvae.images, cvae.targets)}
        names = [n for n in INGREDIENT_ORDER if cfg.uses(n)]
        x_all = torch.cat([parts[n][0] for n in names])
        p_all = torch.cat([parts[n][1] for n in names])
        source = torch.cat([torch.full((len(parts[n][0]),), k, dtype=torch.long) for k, n in enumerate(names)]).to(dev)
        keep, hold = split_holdout(x_all.shape[0], cfg.holdout_fraction, ctx.seed, device=dev)
        held = torch.bincount(source[hold].cpu(), minlength=len(names)).tolist()
        ingredients = [Ingredient(n, phases=(n,), holdout_rows=int(h)) for n, h in zip(names, held)]
        augment = random_affine(cfg.max_shift, cfg.max_rotation) if ctx.info.is_image else None
        hook = online_mixup_hook(cfg.online_mixup) if cfg.online_mixup > 0 else None
        recipe = cfg.recipe(augment=augment, batch_hook=hook, desc="FS-BBT student")
        extras: dict[str, Any] = {
            "config": cfg.as_dict(), "shots": int(x_few.shape[0]), "few_shot_selection": how,
            "mixup_drawn": mixup.drawn, "mixup_kept": mixup.kept, "mixup_dropped": mixup.dropped,
            "cvae_images": len(cvae), "cvae_ood_images": int(cv["is_ood"].sum()),  # type: ignore[attr-defined]
            "synthetic_images": int(mixup.kept + len(cvae)),
            "cvae_final_loss": cv["history"][-1]["loss"] if cv["history"] else None,  # type: ignore[index]
            "label_counts": {n: label_counts(parts[n][1], num_classes) for n in INGREDIENT_ORDER},
        }
        artifacts: dict[str, Any] = {
            "few_shot_images": x_few, "few_shot_probs": p_few, "mixup": mixup, "mixup_probs": p_mix,
            "cvae": cv["model"], "cvae_history": cv["history"], "cvae_images": cvae.images, "cvae_probs": cvae.targets,
            "cvae_latents": cv["latents"], "cvae_is_ood": cv["is_ood"], "cvae_classes": cv["classes"],
            "sources": source, "config": cfg,
        }
        return TransferSet(x_all[keep], (p_all[keep],), "probabilities", build_loss("soft-ce"), recipe, ingredients,
                           source=source[keep], holdout=(x_all[hold], p_all[hold].argmax(1)),
                           selection=f"teacher-labelled holdout of the transfer set ({hold.numel()} images)",
                           extras=extras, artifacts=artifacts)
