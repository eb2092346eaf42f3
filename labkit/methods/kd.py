"""Plain KD (Hinton et al. 2015), the baseline with data, and the student trained alone.

KD queries a *score* box once for every training image and trains the student on
α·CE(S, y) + (1 − α)·τ²·KL(softmax(T/τ) ‖ softmax(S/τ)) (loss ``"kd"``); the runner selects
the epoch on the validation split. The student alone trains with cross-entropy on the true
labels (loss ``"ce"``) and never meets the teacher.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.data import LabeledTensors
from labkit.core.errors import ConfigError
from labkit.core.losses import KDLoss, build_loss
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method

_STUDENT = {"smoke": {"epochs": 2, "batch_size": 128, "lr": 2e-3},
            "laptop": {"epochs": 12, "batch_size": 128, "lr": 2e-3},
            "gpu": {"epochs": 20, "batch_size": 256, "lr": 2e-3},
            "paper": {"epochs": 40, "batch_size": 256, "lr": 1e-3}}


@dataclass(frozen=True)
class StudentConfig(StudentRecipeConfig):
    """The student trained alone: epochs, batch size, learning rate."""

    PROFILES = _STUDENT
    TITLE = "student option"


@dataclass(frozen=True)
class KDConfig(StudentConfig):
    """Plain KD: the student's settings plus the temperature and the hard-label weight."""

    TITLE = "KD option"

    tau: float = option(4.0, help="temperature of the teacher's and the student's softmax")
    alpha: float = option(0.1, help="weight of the cross-entropy on the true labels")

    def validate(self) -> None:
        """τ > 0 and α in [0, 1] (the student recipe is checked by the base)."""
        if self.tau <= 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("KD needs tau > 0 and 0 <= alpha <= 1")


def require_labeled(data: MethodData) -> tuple[LabeledTensors, LabeledTensors]:
    """The labelled training and validation splits, or a clear error."""
    if data.train is None or data.val is None:
        raise ConfigError("this method needs labeled training data (data_access='labeled')")
    return data.train, data.val


@register_method
class StudentAlone(DistillationMethod[StudentConfig]):
    """The student trained with cross-entropy on the true labels: no teacher at all."""

    name = "student"
    access = "none"
    data_access = "labeled"
    summary = "student alone: CE on the labeled training set, no teacher"
    config_class = StudentConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """The labelled training set as it is, true labels as targets."""
        train, _ = require_labeled(data)
        cfg = self.config(ctx)
        return TransferSet(train.x, (train.y,), "class-ids", build_loss("ce"),
                           cfg.recipe(desc="student alone"),
                           [Ingredient("labelled-data")], extras={"config": cfg.as_dict()})


@register_method
class PlainKD(DistillationMethod[KDConfig]):
    """Hinton KD from a score-based teacher on the full labeled training set."""

    name = "kd"
    access = "score"
    data_access = "labeled"
    summary = "plain KD (Hinton): teacher probabilities at temperature tau, plus alpha * CE"
    companions = ("student",)
    config_class = KDConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Every training image answered once by the score box; targets (probabilities, true labels)."""
        assert box is not None  # check_box (the base class) refused a missing box
        train, _ = require_labeled(data)
        cfg = self.config(ctx)
        with box.phase("label transfer set"):
            probs = box(train.x)  # one call; the box chunks by memory
        loss = KDLoss(tau=cfg.tau, alpha=cfg.alpha, from_probabilities=True)
        extras: dict[str, Any] = {"config": cfg.as_dict()}
        return TransferSet(train.x, (probs, train.y), "probabilities", loss,
                           cfg.recipe(desc="plain KD"),
                           [Ingredient("labelled-data", phases=("label transfer set",))],
                           extras=extras, artifacts={"teacher_probs": probs})
