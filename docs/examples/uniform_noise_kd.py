"""DEVELOPING.md's worked example (not a paper's method): KD from a score box on uniform-noise images."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.core.config import StudentRecipeConfig, option
from labkit.core.losses import SoftTargetCrossEntropy
from labkit.core.train import split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, register_method


@dataclass(frozen=True)
class UniformNoiseKDConfig(StudentRecipeConfig):
    """Sizes per profile are data; every field becomes a CLI flag with this help text."""

    PROFILES = {"smoke": {"images": 2000, "epochs": 2}, "laptop": {"images": 50_000, "epochs": 10},
                "paper": {"images": 200_000, "epochs": 40}}
    TITLE = "uniform-noise KD option"
    INGREDIENTS = {"uniform-noise": "U[0,1) pixels, answered by the score box"}

    images: int = option(help="noise images sent to the teacher")
    epochs: int = option(help="student epochs")
    batch_size: int = option(128, help="student batch size")
    lr: float = option(2e-3, help="student learning rate")
    holdout_fraction: float = option(0.1, help="teacher-labelled share kept for epoch selection")
    ingredients: tuple[str, ...] = option(("uniform-noise",), help="parts of the transfer set")


@register_method
class UniformNoiseKD(DistillationMethod[UniformNoiseKDConfig]):
    """Query a score box on uniform noise; train the student on its probabilities."""

    name = "uniform-noise-kd"
    access = "score"
    data_access = "none"
    summary = "KD on teacher-answered uniform noise (the DEVELOPING.md example)"
    config_class = UniformNoiseKDConfig

    def distill(self, box, data, ctx) -> TransferSet:
        cfg = self.config(ctx)
        gen = torch.Generator().manual_seed(ctx.seed)
        x = torch.rand((cfg.images, *ctx.info.image_shape), generator=gen).to(ctx.device)
        with box.phase("uniform noise"):
            probs = box(x)  # one batched call; the box counts every image
        keep, hold = split_holdout(cfg.images, cfg.holdout_fraction, ctx.seed, ctx.device)
        return TransferSet(x[keep], (probs[keep],), "probabilities", SoftTargetCrossEntropy(),
                           cfg.recipe(desc="uniform-noise KD"),
                           [Ingredient("uniform-noise", phases=("uniform noise",), holdout_rows=len(hold))],
                           holdout=(x[hold], probs[hold].argmax(1)), selection="teacher-labelled noise holdout")


if __name__ == "__main__":
    from labkit.studies.runner import run_method

    print(run_method("uniform-noise-kd", profile="smoke", progress=False).record.to_json())
