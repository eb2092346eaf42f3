"""noise-kd: the "naive KD on noise" floor of the hard-label, data-free setting (a lab baseline, no paper).

No data, a decision-only teacher, no search. Draw ``draws`` noise images (the same family, seed and
batches as ZSDB3KD's ``noise-bank`` ingredient, so the two see the same draws), ask the box for every
one's class (one query each, phase ``"noise bank"``), take a class-balanced ``per_class`` of them per
class (a rare class is drawn with replacement) and train the student with cross-entropy on the
teacher's class ids. A few more per class, teacher-labelled, select the epoch.

Whatever ZSDB3KD's pseudo-samples add has to beat this row; hard-label data-free papers report the
same floor. Sizes and the student recipe follow ZSDB3KD's per profile (``ZSDB3KDConfig.PROFILES``).
"""
from __future__ import annotations

from dataclasses import dataclass

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.losses import build_loss
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.methods.zsdb3kd import ZSDB3KDConfig
from labkit.synthesis.noise import NOISE_FAMILIES
from labkit.synthesis.pseudo_samples import rejection_sample
from labkit.synthesis.query_recorder import QueryRecorder

PHASE = "noise bank"
_FROM_ZSDB3KD = {"noise": "noise", "draws": "min_init_draws", "per_class": "bank_per_class",
                 "init_batch": "init_batch", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr"}


@dataclass(frozen=True)
class NoiseKDConfig(StudentRecipeConfig):
    """Sizes of noise-kd: ZSDB3KD's noise bank and student recipe for the same profile."""

    PROFILES = {p: {mine: v[theirs] for mine, theirs in _FROM_ZSDB3KD.items()}
                for p, v in ZSDB3KDConfig.PROFILES.items()}
    TITLE = "noise-kd option"
    INGREDIENTS = {"noise-bank": "teacher-labelled noise draws, class-balanced, trained on the teacher's class ids"}

    noise: str = option(help="noise family (as ZSDB3KD's bank)", choices=tuple(NOISE_FAMILIES))
    draws: int = option(help="noise images drawn and sent to the teacher (one query each)")
    per_class: int = option(help="training rows per class, drawn from the labelled noise")
    init_batch: int = option(help="noise images per box call")
    ingredients: tuple[str, ...] = option(("noise-bank",), help="parts of the transfer set")
    holdout_fraction: float = option(0.1, help="holdout per class = per_class·holdout_fraction/2 (as ZSDB3KD's bank)")

    def validate(self) -> None:
        """Positive sizes, a holdout fraction in (0, 1)."""
        if min(self.draws, self.per_class, self.init_batch) < 1:
            raise ConfigError("draws, per_class and init_batch must be >= 1")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError("holdout_fraction must lie in (0, 1)")


@register_method
class NoiseKD(DistillationMethod[NoiseKDConfig]):
    """Cross-entropy on a decision box's answers for plain noise: the floor for hard-label, data-free KD."""

    name = "noise-kd"
    access = "decision"
    data_access = "none"
    summary = "naive KD on noise: teacher class ids for noise draws, class-balanced, CE (the data-free floor)"
    config_class = NoiseKDConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Label ``draws`` noise images through the box, keep a class-balanced draw of them."""
        assert box is not None  # check_box (the base class) refused a missing box
        cfg = self.config(ctx)
        c = ctx.info.num_classes
        recorder = QueryRecorder(box)
        with box.phase(PHASE):
            init = rejection_sample(recorder, [0] * c, ctx.info.image_shape, seed=ctx.seed, batch=cfg.init_batch,
                                    max_draws=cfg.draws, device=ctx.device, progress=ctx.progress, noise=cfg.noise,
                                    min_draws=cfg.draws)
        per_hold = max(1, int(round(cfg.per_class * cfg.holdout_fraction / 2)))
        draw = recorder.balanced(cfg.per_class, c, ctx.seed, per_hold)
        if draw.y.numel() == 0:
            raise ConfigError(f"no noise draw was labelled into any class after {init.draws:,} draws; raise --draws")
        dev = ctx.device
        return TransferSet(
            draw.x.to(dev), (draw.y.to(dev),), "class-ids", build_loss("ce"),
            cfg.recipe(desc="noise-kd student"),
            [Ingredient("noise-bank", phases=(PHASE,), rows=draw.distinct, holdout_rows=int(draw.holdout_y.numel()))],
            holdout=(draw.holdout_x.to(dev), draw.holdout_y.to(dev)),
            selection="teacher-labelled holdout of the noise draws",
            extras={"config": cfg.as_dict(), "draws": init.draws, "hits_per_class": init.hits_per_class,
                    "classes_seen": int(sum(h > 0 for h in init.hits_per_class))},
            artifacts={"examples": draw.x[:64], "example_labels": draw.y[:64]})
