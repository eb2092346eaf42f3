"""kd-edge: plain KD on MEKD's unlabeled 10% edge subset, MEKD's like-for-like baseline.

The companion of MEKD (:mod:`labkit.methods.mekd`): plain KD (score box, loss ``"kd"``; or, with ``response="hard"``, a
decision box and cross-entropy on the class ids) on the very same edge subset with MEKD's student
recipe: the like-for-like baselines. What was measured with which settings, and how the laptop
student recipe was chosen, is in ``docs/methods/mekd.md`` and ``docs/selection.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.losses import KDLoss, build_loss
from labkit.core.train import split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.methods.mekd import MEKD_PROFILES, response_mode
from labkit.synthesis.deprivatisation import RESPONSES, ask_within_mode, edge_subset


@dataclass(frozen=True)
class EdgeKDConfig(StudentRecipeConfig):
    """kd-edge: plain KD on MEKD's edge subset; epochs, batch size and learning rate default to MEKD's."""

    PROFILES = {p: {k: v[k] for k in ("edge_fraction", "epochs", "batch_size", "lr")} for p, v in MEKD_PROFILES.items()}
    TITLE = "kd-edge option"
    INGREDIENTS = {"edge-images": "MEKD's edge subset answered by the box; 10% of it selects the epoch"}

    edge_fraction: float = option(help="share of the unlabeled training images the edge side holds")
    epochs: int = option(help="student epochs (MEKD's, for a like-for-like baseline)")
    batch_size: int = option(help="student batch size (MEKD's)")
    lr: float = option(help="student learning rate (MEKD's)")
    response: str = option("soft", choices=RESPONSES, help="soft: KD on the score box's probabilities (loss kd); "
                           "hard: cross-entropy on the decision box's class ids (one-hot teacher answers)")
    ingredients: tuple[str, ...] = option(("edge-images",), help="parts of the transfer set to build")
    tau: float = option(4.0, help="KD temperature (soft responses)")
    holdout_fraction: float = option(0.1, help="teacher-labelled share of the edge subset held out for selection")

    def validate(self) -> None:
        """Sizes positive, fractions in range, τ > 0 (the base checks the response mode)."""
        if not 0 < self.edge_fraction <= 1 or not 0 < self.holdout_fraction < 1:
            raise ConfigError("edge_fraction must lie in (0, 1] and holdout_fraction in (0, 1)")
        if self.tau <= 0:
            raise ConfigError("tau must be > 0")


@register_method
class EdgeKD(DistillationMethod[EdgeKDConfig]):
    """Plain KD on MEKD's unlabeled 10% edge subset: the baseline (soft: score box, loss ``"kd"``;
    hard: decision box, cross-entropy on the teacher's class ids)."""

    name = "kd-edge"
    access = "score"
    data_access = "unlabeled"
    summary = "plain KD from teacher probabilities (or, --response hard, class ids) on MEKD's unlabeled 10% edge subset"
    config_class = EdgeKDConfig

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.response = response_mode(self)

    @property
    def label(self) -> str:
        """``kd-edge`` (soft) or ``kd-edge-hard``."""
        return self.name if self.response == "soft" else f"{self.name}-hard"

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """The edge subset answered by the box; a teacher-labelled 10% of it selects the epoch."""
        assert box is not None  # check_box (the base class) refused a missing box
        cfg = self.config(ctx)
        edge = edge_subset(data.unlabeled, cfg.edge_fraction, ctx.seed)
        with box.phase("label edge subset"):
            answers = ask_within_mode(box, edge, self.response)
        keep, hold = split_holdout(edge.shape[0], cfg.holdout_fraction, ctx.seed, device=edge.device)
        if self.response == "hard":
            kind, loss, hold_y = "class-ids", build_loss("ce"), answers[hold]
        else:
            kind, loss, hold_y = "probabilities", KDLoss(tau=cfg.tau, from_probabilities=True), answers[hold].argmax(1)
        return TransferSet(edge[keep], (answers[keep],), kind, loss,
                           cfg.recipe(desc=f"plain KD on the edge subset ({self.response} answers)"),
                           [Ingredient("edge-images", phases=("label edge subset",), holdout_rows=int(hold.numel()))],
                           holdout=(edge[hold], hold_y),
                           selection=f"teacher-labelled holdout ({cfg.holdout_fraction:.0%}) of the edge subset",
                           extras={"config": cfg.as_dict(), "edge_subset_size": int(edge.shape[0]),
                                   "response": self.response})
