"""FS-BBT: black-box few-shot KD with MixUp and a CVAE (Nguyen et al., ECCV 2022).

The teacher is a *score* box and the method sees only unlabeled images. It builds
its transfer set in four steps, every image of it labelled by the teacher:

1. **Few-shot set.** N class-balanced unlabeled images (200 per class in the
   paper; the runner picks them from the labels it keeps hidden, see
   :attr:`~labkit.methods.base.MethodData.balanced_subset`). Query the box on each.
2. **MixUp.** Draw ``nomixup`` pairs by shuffling and λ ~ Beta(1, 1) rounded to
   2 decimals; drop λ ≤ 0.05 or λ ≥ 0.95 (near-copies of a real image); mix
   x̃ = λ·x₁ + (1 − λ)·x₂ for the rest and query each.
3. **CVAE.** Train a conditional VAE (:mod:`labkit.cvae`) on the N images,
   conditioned on the teacher's argmax. Decode as many images as MixUp dropped,
   half from z ~ N(0, I) and half from z ~ U[−3, 3]² (out of distribution), and
   query each. So the synthetic part has exactly ``nomixup`` images, and the
   method spends exactly N + ``nomixup`` queries.
4. **Student.** Cross-entropy against the teacher's probability vectors on all
   of it, with online MixUp and small random shifts and rotations. The epoch is
   chosen on a teacher-labelled holdout of the transfer set (never the test set).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

import torch

from ..blackbox import BlackBox
from ..cvae import CVAEBase, balanced_classes, build_cvae, hybrid_latents, train_cvae
from ..errors import AccessDenied, LabkitError, UnknownNameError
from ..losses import SoftTargetCrossEntropy
from ..profiles import Profile
from ..train import BatchHook, fit, random_affine, split_holdout
from .base import DistillationMethod, DistillOutput, MethodData, RunContext, register_method

#: the paper's ``nomixup`` (synthetic images in total) per data set
PAPER_NOMIXUP: dict[str, int] = {"mnist": 24_000, "fashion-mnist": 48_000, "cifar10": 40_000}
SOURCES: tuple[str, ...] = ("real", "mixup", "cvae")


class FewShotConfigError(LabkitError, ValueError):
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
    """A :func:`~labkit.train.fit` batch hook: mix a random ``share`` of each batch with a shuffled partner.

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
class FSBBTConfig:
    """Sizes and settings of FS-BBT (see the module doc for what each step does)."""

    shots: int  # N, the few-shot images
    nomixup: int  # λ draws = synthetic images in total (kept mixes + CVAE images)
    cvae_epochs: int
    epochs: int  # student epochs
    batch_size: int
    lr: float
    mixup_low: float = 0.05
    mixup_high: float = 0.95
    cvae_count: int | None = None  # CVAE images; None = as many as MixUp dropped
    cvae_batch_size: int = 128
    cvae_lr: float = 3e-3
    latent_dim: int = 2
    ood_fraction: float = 0.5  # share of CVAE latents from U[−r, r]^d
    ood_range: float = 3.0
    online_mixup: float = 0.5  # share of each student batch mixed online
    max_shift: float = 2.0  # pixels
    max_rotation: float = 10.0  # degrees
    holdout_fraction: float = 0.1  # teacher-labelled holdout of the transfer set, for model selection

    @classmethod
    def for_profile(cls, profile: Profile, dataset: str = "fashion-mnist", **overrides: object) -> "FSBBTConfig":
        """The profile's defaults (paper: the paper's ``nomixup`` for the data set) with non-None overrides."""
        name = profile.name
        if name == "smoke":
            base = cls(shots=200, nomixup=800, cvae_epochs=10, epochs=2, batch_size=32, lr=3e-3)
        elif name == "laptop":
            base = cls(shots=2000, nomixup=12_000, cvae_epochs=100, epochs=15, batch_size=128, lr=3e-3)
        else:
            base = cls(shots=2000, nomixup=PAPER_NOMIXUP.get(dataset, 24_000), cvae_epochs=200,
                       epochs=profile.student_epochs, batch_size=profile.batch_size, lr=2e-3)
        known = {f.name for f in fields(cls)}
        unknown = [k for k, v in overrides.items() if v is not None and k not in known]
        if unknown:
            raise UnknownNameError("FS-BBT option", unknown[0], sorted(known))
        cfg = cls(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`FewShotConfigError` for settings that cannot work."""
        if self.shots < 2:
            raise FewShotConfigError(f"shots must be at least 2 (got {self.shots})")
        if self.nomixup < 0 or (self.cvae_count is not None and self.cvae_count < 0):
            raise FewShotConfigError("nomixup and cvae_count must be non-negative")
        if not 0.0 <= self.mixup_low < self.mixup_high <= 1.0:
            raise FewShotConfigError(f"need 0 ≤ mixup_low < mixup_high ≤ 1, got {self.mixup_low}, {self.mixup_high}")
        if not 0.0 < self.holdout_fraction < 0.5:
            raise FewShotConfigError("holdout_fraction must lie in (0, 0.5)")
        if not 0.0 <= self.online_mixup <= 1.0 or not 0.0 <= self.ood_fraction <= 1.0:
            raise FewShotConfigError("online_mixup and ood_fraction are shares in [0, 1]")


def query_in_batches(box: BlackBox, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """The box's answers for ``x``, sent in chunks of ``chunk`` images (each image counted once)."""
    return torch.cat([box(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])


def label_counts(probs: torch.Tensor, num_classes: int) -> list[int]:
    """How many rows of ``probs`` have each class as their argmax."""
    if probs.shape[0] == 0:
        return [0] * num_classes
    return torch.bincount(probs.argmax(1), minlength=num_classes).cpu().tolist()


# --------------------------------------------------------------------------- the method

@register_method
class FSBBT(DistillationMethod):
    """FS-BBT (Nguyen et al., ECCV 2022): few-shot score-box KD with MixUp and CVAE images.

    Queries exactly N (few-shot) + nomixup (MixUp kept + CVAE) images; selects the
    student's epoch on a teacher-labelled holdout of that transfer set.
    """

    name = "fsbbt"
    access = "score"
    data_access = "unlabeled"
    summary = "FS-BBT: N few-shot images + MixUp + CVAE images, all labelled by a score box"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--shots", type=int, help="N, class-balanced few-shot images (paper: 2000)")
        parser.add_argument("--nomixup", type=int,
                            help="synthetic images in total: MixUp kept + CVAE (paper: 48000 on Fashion-MNIST)")
        parser.add_argument("--cvae-count", type=int, help="CVAE images (default: as many as MixUp dropped)")
        parser.add_argument("--cvae-epochs", type=int, help="CVAE training epochs")
        parser.add_argument("--epochs", type=int, help="student epochs (default: the profile's)")
        parser.add_argument("--lr", type=float, help="student learning rate")
        parser.add_argument("--online-mixup", type=float, help="share of each student batch mixed online (0 = off)")

    def config(self, ctx: RunContext) -> FSBBTConfig:
        """This run's settings: the profile's defaults with the options given."""
        return FSBBTConfig.for_profile(ctx.profile, ctx.info.name, **self.options)

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
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

        # 1. the few-shot set
        if data.balanced_subset is not None:
            idx, how = data.balanced_subset(cfg.shots), "class-balanced (picked by the runner)"
        else:
            idx, how = torch.randperm(pool.shape[0], generator=gen)[:cfg.shots], "random (no balanced subset given)"
        x_few = pool[idx.to(pool.device)].to(dev)
        with box.phase("few-shot"):
            p_few = query_in_batches(box, x_few)

        # 2. MixUp
        mixup = make_mixup_set(x_few, cfg.nomixup, gen, cfg.mixup_low, cfg.mixup_high)
        p_mix = p_few[:0]
        if mixup.kept:
            with box.phase("mixup"):
                p_mix = query_in_batches(box, mixup.images)

        # 3. CVAE, conditioned on the teacher's argmax
        n_cvae = mixup.dropped if cfg.cvae_count is None else cfg.cvae_count
        cvae: CVAEBase | None = None
        cvae_hist: list[dict[str, float]] = []
        x_cvae, p_cvae = x_few[:0], p_few[:0]
        z = torch.zeros(0, cfg.latent_dim, device=dev)
        is_ood = torch.zeros(0, dtype=torch.bool, device=dev)
        y_cvae = torch.zeros(0, dtype=torch.long, device=dev)
        if n_cvae > 0:
            torch.manual_seed(ctx.seed + 1)
            cvae = build_cvae(tuple(x_few.shape[1:]), num_classes, cfg.latent_dim).to(dev)
            trained = train_cvae(cvae, x_few, p_few.argmax(1), epochs=cfg.cvae_epochs,
                                 batch_size=cfg.cvae_batch_size, lr=cfg.cvae_lr, seed=ctx.seed,
                                 progress=ctx.progress, desc="FS-BBT CVAE")
            cvae_hist = trained.history
            z, is_ood = hybrid_latents(n_cvae, cfg.latent_dim, ood_fraction=cfg.ood_fraction,
                                       ood_range=cfg.ood_range, generator=gen, device=dev)
            y_cvae = balanced_classes(n_cvae, num_classes, device=dev)
            x_cvae = cvae.generate(z, y_cvae)
            with box.phase("cvae"):
                p_cvae = query_in_batches(box, x_cvae)

        # 4. the student, selected on a teacher-labelled holdout of the transfer set
        x_all = torch.cat([x_few, mixup.images, x_cvae])
        p_all = torch.cat([p_few, p_mix, p_cvae])
        source = torch.cat([torch.full((len(x_few),), 0), torch.full((mixup.kept,), 1),
                            torch.full((len(x_cvae),), 2)]).to(dev)
        keep, hold = split_holdout(x_all.shape[0], cfg.holdout_fraction, ctx.seed, device=dev)
        augment = random_affine(cfg.max_shift, cfg.max_rotation) if ctx.info.is_image else None
        hook = online_mixup_hook(cfg.online_mixup) if cfg.online_mixup > 0 else None
        student = ctx.new_student()
        res = fit(student, x_all[keep], p_all[keep], SoftTargetCrossEntropy(),
                  val=(x_all[hold], p_all[hold].argmax(1)), epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr, device=dev, seed=ctx.seed, augment=augment, batch_hook=hook,
                  progress=ctx.progress, desc="FS-BBT student")

        extras: dict[str, object] = {
            "config": asdict(cfg), "shots": int(x_few.shape[0]), "few_shot_selection": how,
            "mixup_drawn": mixup.drawn, "mixup_kept": mixup.kept, "mixup_dropped": mixup.dropped,
            "cvae_images": int(x_cvae.shape[0]), "cvae_ood_images": int(is_ood.sum()),
            "synthetic_images": int(mixup.kept + x_cvae.shape[0]),
            "cvae_final_loss": cvae_hist[-1]["loss"] if cvae_hist else None,
            "holdout_size": int(hold.numel()), "best_epoch": res.best_epoch,
            "label_counts": {name: label_counts(p, num_classes) for name, p in zip(SOURCES, (p_few, p_mix, p_cvae))},
        }
        artifacts = {
            "few_shot_images": x_few, "few_shot_probs": p_few, "mixup": mixup, "mixup_probs": p_mix,
            "cvae": cvae, "cvae_history": cvae_hist, "cvae_images": x_cvae, "cvae_probs": p_cvae,
            "cvae_latents": z, "cvae_is_ood": is_ood, "cvae_classes": y_cvae, "sources": source,
            "config": cfg, "fit": res,
        }
        return DistillOutput(student, int(x_all.shape[0]), res.best_val_acc,
                             selection=f"teacher-labelled holdout of the transfer set ({hold.numel()} images)",
                             history=res.history, extras=extras, artifacts=artifacts)
