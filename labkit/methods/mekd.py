"""MEKD: mapping-emulation KD (Ma et al., CVPR 2024), with soft (score) or hard (decision) responses.

Two phases, both through the :class:`~labkit.core.blackbox.BlackBox` only.

**1. Deprivatisation** (:func:`labkit.synthesis.deprivatisation.train_generator`). A generator G maps a response
vector z ~ N(0, I_C) to an image, emulating T's inverse; its discriminator sees an *unlabeled* edge subset (a seeded
10% of the training images). The information term (``deprivatisation``, four versions) is described there. Only
G's samples are sent to T in this phase.

**2. Distillation** (:class:`~labkit.synthesis.alignment.GenerativeAlignmentLoss`, ``"mekd-alignment"``): G is
frozen, and the student aligns its logits with the box's answers on fresh G(z) through G. Hard mode is built on a
decision box and refuses any other.

Ingredients of the transfer set:

* ``generated`` (the paper's): ``transfer_size`` images G(z) answered by the box (queries of both phases). Alone, a
  further ``holdout_size`` generated, teacher-labelled images select the epoch.
* ``edge-images`` (a lab addition, on in the smoke and laptop profiles): the edge images answered by the box too
  (phase ``distillation: edge images``) under the same loss; a teacher-labelled 10% of them selects the epoch.
  This gives up the paper's "edge images never leave the device" for accuracy.

``variant="paper"`` (and the paper profile) is the paper's mechanism alone: ``generated`` only, the paper's term,
the authors' G and D, and their online stream (fresh z and G(z) at every student step); ``"authors-code"`` swaps in
the code's term, ``"fixed-set"`` one fixed answered set (the lab's earlier mechanism). The smoke and laptop
profiles add both lab additions.

The companion ``kd-edge`` (:mod:`labkit.methods.kd_edge`) is plain KD on the very same edge subset with MEKD's
student recipe: the like-for-like baselines. What was measured with which settings, and how the laptop
student recipe was chosen, is in ``docs/methods/mekd.md`` and ``docs/selection.md``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.train import FitResult, split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.alignment import GenerativeAlignmentLoss, generative_alignment, response_logits
from labkit.synthesis.base import settings_from
from labkit.synthesis.deprivatisation import (
    BOX_ACCESS,
    DEPRIVATISATION_LOSSES,
    RESPONSES,
    GANSettings,
    GeneratorSamplingSettings,
    GeneratorSynthesizer,
    ask_within_mode,
    check_response,
    edge_subset,
    inverse_emulation,
    require_box,
    train_generator,
)
from labkit.synthesis.generators import GAN_LAYOUTS, freeze

__all__ = ["MEKD", "MEKDConfig", "generated_transfer_set", "response_mode", "GenerativeAlignmentLoss",
           "generative_alignment", "response_logits"]

#: MEKD's sizes per profile; laptop sized for two CPU cores (docs/methods/mekd.md), gpu (below) for a T4 (docs/cost.md)
MEKD_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"edge_fraction": 0.1, "gan_epochs": 1, "epochs": 2, "transfer_size": 640, "holdout_size": 128,
              "batch_size": 128, "lr": 3e-3, "g_width": 16, "d_width": 8, "ingredients": ("generated", "edge-images")},
    "laptop": {"edge_fraction": 0.1, "gan_epochs": 8, "epochs": 15, "transfer_size": 6000, "holdout_size": 2000,
               "batch_size": 128, "lr": 5e-3, "g_width": 32, "d_width": 16, "gan_batch": 128,
               "ingredients": ("generated", "edge-images")},
    # the authors' G (width 128) and D (first block 16: 16-32-64-128 channels) in their layout (the paper variant)
    "paper": {"edge_fraction": 0.1, "gan_epochs": 40, "epochs": 40, "transfer_size": 60000, "holdout_size": 5000,
              "batch_size": 256, "lr": 1e-3, "g_width": 128, "d_width": 16, "ingredients": ("generated",),
              "variant": "paper"},
}
MEKD_PROFILES["gpu"] = dict(MEKD_PROFILES["laptop"], gan_epochs=24, epochs=20, transfer_size=24_000, g_width=64)
GAN_PHASES = ("deprivatisation: G(z)", "distillation: G(z)")
STREAM_PHASE = "distillation: G(z) stream"


@dataclass(frozen=True)
class MEKDConfig(StudentRecipeConfig):
    """Sizes and settings of MEKD (both phases); see the module doc."""

    PROFILES = MEKD_PROFILES
    TITLE = "MEKD option"
    #: the paper's mechanism (its term, the authors' G and D, the online stream); the code's term; a fixed set
    VARIANTS = {"lab": {},
                "paper": {"ingredients": ("generated",), "deprivatisation": "paper-text", "stream": True,
                          "gan_layout": "authors"},
                "authors-code": {"ingredients": ("generated",), "deprivatisation": "authors-code", "stream": True,
                                 "gan_layout": "authors"},
                "fixed-set": {"ingredients": ("generated",), "deprivatisation": "paper-text", "stream": False,
                              "gan_layout": "authors"}}
    #: the paper variant's laptop GAN: 32 epochs, chosen on the validation split (docs/selection.md)
    VARIANT_PROFILES = {"paper": {"laptop": {"gan_epochs": 32}}}
    INGREDIENTS = {
        "generated": "G's samples answered by the box, and the GAN training's queries (the paper's)",
        "edge-images": "the edge subset answered by the box and mixed in; 10% of it selects the epoch (lab addition)",
        "stream": "fresh G(z) answered at every student step (set by stream=True, the paper variants)"}

    edge_fraction: float = option(help="share of the unlabeled training images the edge side holds")
    gan_epochs: int = option(help="passes of the GAN over the edge subset")
    transfer_size: int = option(help="generated images the student trains on")
    holdout_size: int = option(help="generated, teacher-labelled images that select the epoch (without edge-images)")
    g_width: int = option(help="generator channels at the lowest resolution")
    d_width: int = option(help="discriminator channels of its first conv")
    response: str = option("soft", choices=RESPONSES, help="soft: the teacher answers probabilities (score box); "
                           "hard: class ids only (decision box)")
    ingredients: tuple[str, ...] = option(("generated",), help="parts of the transfer set to build")
    gan_batch: int = option(64, help="GAN batch size")
    gan_lr: float = option(2e-4, help="GAN learning rate (Adam)")
    beta1: float = option(0.5, help="GAN Adam beta1")
    beta2: float = option(0.999, help="GAN Adam beta2")
    deprivatisation: str = option("teacher-imitation", choices=DEPRIVATISATION_LOSSES,
                                  help="G's information term: paper-text, authors-code (their DCGAN.py as written), "
                                       "class-head (a lab variant) or teacher-imitation (a lab addition); "
                                       "docs/methods/mekd.md")
    info_weight: float | None = option(None, help="weight λ of the information term in G's loss (None: 1.0 for "
                                       "teacher-imitation, 0.5 for the others)")
    variant: str = option("lab", choices=tuple(VARIANTS), help="paper: generated images only, the paper's "
                          "information term, the online stream; authors-code: the code's term; fixed-set: one fixed "
                          "answered set instead of the stream; lab: the profile as is")
    tau: float = option(5.0, help="temperature τ of the KL term")
    tau_g: float = option(5.0, help="temperature τ_g of the responses fed to G in the alignment term")
    w_f: float = option(1.0, help="weight of the generative alignment term")
    w_kl: float = option(1.0, help="weight of the KL term")
    display_scale: float = option(3.0, help="one-hot vectors are scaled by this for pictures", cli=False)
    edge_holdout: float = option(0.1, help="with edge-images: share of the answered edge images held out for selection")
    stream: bool = option(False, help="the authors' online distillation: fresh z and G(z) at every student step, "
                          "each batch answered by the box (phase 'distillation: G(z) stream'); transfer_size sets "
                          "an epoch's length; generated images only")
    gan_layout: str = option("lab", choices=GAN_LAYOUTS, help="G's and D's layers: lab, or authors (their "
                             "DCGAN.py: G with three convs, D with four strided blocks; the paper variants)")
    inverse_check: int = option(0, help="fresh z on which the run measures how well G emulates the teacher's "
                                "inverse after the GAN (counted queries, phase 'inverse check: G(z)'; 0: off)")

    def validate(self) -> None:
        """'generated' on, sizes positive, temperatures > 0 (the base checks the choices)."""
        if self.info_weight is not None and self.info_weight < 0:
            raise ConfigError(f"info_weight must be >= 0 (or None for the loss's default), got {self.info_weight}")
        if not self.uses("generated"):
            raise ConfigError("MEKD cannot leave out 'generated': its loss runs through the generator G that the "
                              "GAN training builds. For the edge images alone, run kd-edge.")
        if not 0 < self.edge_fraction <= 1:
            raise ConfigError(f"edge_fraction must lie in (0, 1], got {self.edge_fraction}")
        if not 0 < self.edge_holdout < 1:
            raise ConfigError(f"edge_holdout must lie in (0, 1), got {self.edge_holdout}")
        for name in ("gan_epochs", "transfer_size", "holdout_size", "gan_batch", "inverse_check"):
            if int(getattr(self, name)) < (0 if name == "inverse_check" else 1):
                raise ConfigError(f"{name} must be at least {int(name != 'inverse_check')}, got {getattr(self, name)}")
        if self.tau <= 0 or self.tau_g <= 0:
            raise ConfigError("the temperatures tau and tau_g must be > 0")
        if self.uses("stream"):
            raise ConfigError("the 'stream' ingredient is switched on by stream=True (the paper variants), not listed")
        if self.stream and self.uses("edge-images"):
            raise ConfigError("stream=True runs on G's samples alone: leave out 'edge-images' or the stream")

    def gan_settings(self) -> GANSettings:
        """The deprivatisation's settings: the GAN's epochs, batch, optimiser, widths and information term."""
        return settings_from(GANSettings, self)


def response_mode(method: DistillationMethod[Any]) -> str:
    """Normalise a method's ``response`` option (soft | hard), store it back, and set the box access the runner
    builds from it (a decision box for hard answers). Returns the response."""
    response = check_response(str(method.options.get("response", "soft")))
    method.options["response"] = response
    method.access = BOX_ACCESS[response]
    return response


# ---------------------------------------------------------------------------------------------- transfer set
def generated_transfer_set(box: BlackBox, generator: nn.Module, num_classes: int, cfg: MEKDConfig, *, seed: int = 0,
                           progress: bool = True, edge_images: torch.Tensor | None = None) -> TransferSet:
    """Phase 2's transfer set: G's samples answered by the box (and, with ``edge-images``, the edge images).

    With ``edge-images`` the edge images are answered too (phase ``distillation: edge images``) and
    join the training rows; a seeded ``cfg.edge_holdout`` share of them, teacher-labelled, selects the
    epoch. Without it, ``cfg.holdout_size`` further generated images do. The loss is the alignment loss
    through the frozen G; targets are (the box's answers, G(r_T/τ_g)).
    """
    response = check_response(cfg.response)
    require_box(box, response)
    G = freeze(generator)
    synth = GeneratorSynthesizer(box, G, GeneratorSamplingSettings(num_classes, response), seed=seed + 104729)
    generated = Ingredient("generated", phases=GAN_PHASES)
    if cfg.uses("edge-images"):
        if edge_images is None:
            raise ConfigError("the 'edge-images' ingredient needs the edge images")
        result = synth.synthesize(cfg.transfer_size, progress=progress)
        x_edge = edge_images.to(result.images.device)
        with box.phase("distillation: edge images"):
            r_edge = ask_within_mode(box, x_edge, response)
        keep, hold = split_holdout(x_edge.shape[0], cfg.edge_holdout, seed, device=x_edge.device)
        x_train, r_train = torch.cat([result.images, x_edge[keep]]), torch.cat([result.targets, r_edge[keep]])
        x_hold, r_hold = x_edge[hold], r_edge[hold]
        ingredients = [generated, Ingredient("edge-images", phases=("distillation: edge images",),
                                             holdout_rows=int(hold.numel()))]
        source = torch.cat([torch.zeros(len(result), dtype=torch.long), torch.ones(keep.numel(), dtype=torch.long)])
        selection = "teacher-labelled holdout of the edge images"
    elif cfg.stream:  # the authors' online distillation: only the holdout is a fixed, answered set
        result = synth.synthesize(cfg.holdout_size, progress=progress)
        x_hold, r_hold = result.images, result.targets
        x_train = torch.zeros((cfg.transfer_size, *x_hold.shape[1:]), device=x_hold.device)  # placeholders
        r_train = torch.zeros((cfg.transfer_size, *r_hold.shape[1:]), dtype=r_hold.dtype, device=r_hold.device)
        generated.holdout_rows = int(x_hold.shape[0])
        stream = Ingredient("stream", phases=(STREAM_PHASE,), rows=0)
        ingredients, source = [generated, stream], torch.zeros(cfg.transfer_size, dtype=torch.long)
        selection = "teacher-labelled holdout of generated images"
    else:
        result = synth.synthesize(cfg.transfer_size + cfg.holdout_size, progress=progress)
        keep, hold = split_holdout(len(result), cfg.holdout_size / (cfg.transfer_size + cfg.holdout_size), seed,
                                   device=result.images.device)
        x_train, r_train = result.images[keep], result.targets[keep]
        x_hold, r_hold = result.images[hold], result.targets[hold]
        generated.holdout_rows = int(hold.numel())
        ingredients, source = [generated], torch.zeros(keep.numel(), dtype=torch.long)
        selection = "teacher-labelled holdout of generated images"
    y_hold = r_hold if response == "hard" else r_hold.argmax(1)
    loss = GenerativeAlignmentLoss(G, num_classes, response, cfg.tau, cfg.tau_g, cfg.w_f, cfg.w_kl)
    top = r_train if response == "hard" else r_train.argmax(1)
    hook = stream_of_generated(box, G, num_classes, response, loss) if cfg.stream else None
    # on the stream the hook replaces every batch's targets: the placeholders need no G(r_T/τ_g) computed
    images_t = torch.zeros_like(x_train) if cfg.stream else loss.teacher_images(r_train)
    return TransferSet(
        x_train, (r_train, images_t), "class-ids" if response == "hard" else "probabilities", loss,
        cfg.recipe(desc=f"MEKD-{response}: distil", batch_hook=hook), ingredients,
        source=source.to(x_train.device), holdout=(x_hold, y_hold), selection=selection,
        extras={"class_histogram": torch.bincount(top.long(), minlength=num_classes).tolist()},
        artifacts={"transfer_images": x_train[:256].detach(), "transfer_targets": r_train[:256].detach(),
                   "loss": loss, "synthesizer": synth})


def stream_of_generated(box: BlackBox, generator: nn.Module, num_classes: int, response: str,
                        loss: GenerativeAlignmentLoss) -> Callable[..., tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
    """A student batch hook: every batch replaced by fresh G(z), z ~ N(0, I_C), answered by the box (phase
    ``distillation: G(z) stream``), with their targets for the alignment loss: the authors' online distillation."""
    def hook(x: torch.Tensor, targets: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        z = torch.randn(x.shape[0], num_classes, generator=gen).to(x.device)
        with torch.no_grad():
            images = generator(z)
        with box.phase(STREAM_PHASE):
            answers = ask_within_mode(box, images, response)
        return images, (answers, loss.teacher_images(answers))
    return hook


@register_method
class MEKD(DistillationMethod[MEKDConfig]):
    """MEKD: a generator trained on a 10% unlabeled edge subset emulates T⁻¹; the student aligns logits through it."""

    name = "mekd"
    access = "score"
    data_access = "unlabeled"
    summary = "MEKD (Ma et al. 2024): deprivatise with a GAN on 10% unlabeled data, align logits through frozen G"
    companions = ("kd-edge",)
    config_class = MEKDConfig

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.response = response_mode(self)

    @property
    def label(self) -> str:
        """``mekd-soft`` or ``mekd-hard``."""
        return f"{self.name}-{self.response}"

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Train G and D on the edge subset, then build the generated (and edge) transfer set."""
        assert box is not None  # check_box (the base class) refused a missing box
        cfg = self.config(ctx)
        edge = edge_subset(data.unlabeled, cfg.edge_fraction, ctx.seed)
        dep = train_generator(box, edge, ctx.info.num_classes,
                              replace(cfg.gan_settings(), precision=ctx.synthesis_precision), response=self.response,
                              info=ctx.info, device=ctx.device, seed=ctx.seed, progress=ctx.progress)
        gan_queries = box.queries
        inverse = inverse_emulation(box, dep.generator, ctx.info.num_classes, self.response, cfg.inverse_check,
                                    seed=ctx.seed) if cfg.inverse_check else None
        transfer = generated_transfer_set(box, dep.generator, ctx.info.num_classes, cfg, seed=ctx.seed,
                                          progress=ctx.progress, edge_images=edge if cfg.uses("edge-images") else None)
        last = dep.history[-1] if dep.history else {}
        transfer.extras.update({
            "config": cfg.as_dict(), "response": self.response, "edge_subset_size": dep.edge_size,
            "deprivatisation_queries": gan_queries, "gan_seconds": round(dep.seconds, 2),
            "teacher_agrees_with_argmax_z": last.get("teacher_agrees"), "gan_history": dep.history,
            "kl_softmax_z_to_teacher": last.get("kl_softmax_z_to_teacher"), "inverse_check": inverse,
        })
        transfer.artifacts.update({"generator": dep.generator, "discriminator": dep.discriminator,
                                   "snapshots": dep.snapshots, "edge_images": edge[:256].detach()})
        return transfer

    def after_training(self, transfer: TransferSet, student: nn.Module, fit: FitResult, box: BlackBox | None,
                       data: MethodData, ctx: RunContext) -> None:
        """Record how long the student's distillation took."""
        transfer.extras["distill_seconds"] = round(fit.seconds, 2)
