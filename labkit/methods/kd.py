"""Plain KD (Hinton et al. 2015), the baseline with data, and the student trained alone.

KD queries a *score* box once for every training image (no augmentation, so one
answer per image is all the teacher can say), then trains the student on
α·CE(S, y) + (1 − α)·τ²·KL(softmax(T/τ) ‖ softmax(S/τ)), selecting the epoch on
the validation split.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import torch

from ..blackbox import BlackBox
from ..losses import KDLoss, build_loss
from ..profiles import Profile
from ..train import fit
from .base import DistillationMethod, DistillOutput, MethodData, RunContext, register_method


@dataclass(frozen=True)
class KDConfig:
    """Sizes and settings of plain KD / student-alone training."""

    epochs: int
    batch_size: int
    lr: float
    tau: float = 4.0
    alpha: float = 0.1

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: float) -> "KDConfig":
        """The profile's defaults with any non-None overrides."""
        base = cls(epochs=profile.student_epochs, batch_size=profile.batch_size, lr=2e-3 if profile.name != "paper" else 1e-3)
        return cls(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})


def _require_labeled(data: MethodData) -> tuple:
    if data.train is None or data.val is None:
        raise ValueError("this method needs labeled training data (data_access='labeled')")
    return data.train, data.val


@register_method
class StudentAlone(DistillationMethod):
    """The student trained with cross-entropy on the true labels: no teacher at all."""

    name = "student"
    access = "none"
    data_access = "labeled"
    summary = "student alone: CE on the labeled training set, no teacher"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--epochs", type=int, help="training epochs (default: the profile's)")
        parser.add_argument("--lr", type=float, help="learning rate")

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
        train, val = _require_labeled(data)
        cfg = KDConfig.for_profile(ctx.profile, **{k: self.options.get(k) for k in ("epochs", "lr")})
        student = ctx.new_student()
        res = fit(student, train.x, train.y, build_loss("ce"), val=val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr, device=ctx.device, seed=ctx.seed, progress=ctx.progress, desc="student alone")
        return DistillOutput(student, len(train), res.best_val_acc, history=res.history,
                             extras={"config": asdict(cfg), "best_epoch": res.best_epoch})


@register_method
class PlainKD(DistillationMethod):
    """Hinton KD from a score-based teacher on the full labeled training set."""

    name = "kd"
    access = "score"
    data_access = "labeled"
    summary = "plain KD (Hinton): teacher probabilities at temperature tau, plus alpha * CE"
    companions = ("student",)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--epochs", type=int, help="training epochs (default: the profile's)")
        parser.add_argument("--lr", type=float, help="learning rate")
        parser.add_argument("--tau", type=float, help="temperature (default 4)")
        parser.add_argument("--alpha", type=float, help="weight of the hard-label CE term (default 0.1)")

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
        if box is None:
            raise ValueError("plain KD needs a score box")
        train, val = _require_labeled(data)
        cfg = KDConfig.for_profile(ctx.profile, **{k: self.options.get(k) for k in ("epochs", "lr", "tau", "alpha")})
        with box.phase("label transfer set"):
            probs = torch.cat([box(train.x[i:i + 4096]) for i in range(0, len(train), 4096)])
        student = ctx.new_student()
        loss = KDLoss(tau=cfg.tau, alpha=cfg.alpha, from_probabilities=True)
        res = fit(student, train.x, (probs, train.y), loss, val=val, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr, device=ctx.device, seed=ctx.seed, progress=ctx.progress, desc="plain KD")
        return DistillOutput(student, len(train), res.best_val_acc, history=res.history,
                             extras={"config": asdict(cfg), "best_epoch": res.best_epoch},
                             artifacts={"teacher_probs": probs})
