"""ZSKD: zero-shot KD with Data Impressions (Nayak et al., ICML 2019), white-box teacher, no data.

What the code does: class similarity ``C`` from the teacher's final layer (:func:`class_similarity`), Dirichlet
targets ``y ~ Dir(β·C_k)`` per impression (``betas``, ``beta_mode``: :func:`dirichlet_concentration`), Adam on the
pixels through the white box until ``softmax(T(x)/τ)`` matches ``y`` (the Data Impressions synthesizer), the
teacher's softmax at τ as every impression's label, and a student trained with τ²·KL (loss ``"soft-kd"``, at
``student_tau`` when set). Ingredients: ``impressions`` (phases ``"craft impressions"``, ``"label impressions"``)
and ``relabelled-copies`` (phase ``"relabel copies"``: dark-border + blur copies of every impression,
:func:`~labkit.synthesis.augment.border_blur_copies`, each labelled by the teacher at τ). A ``holdout_fraction`` of
the impressions (with their copies), labelled with the teacher's top-1 class, selects the epoch.

The paper's recipe, where the lab differs (β's order, the crafting loss, the copies, the sizes), the experiments
behind the profiles: ``docs/methods/zskd.md``; how each setting was chosen: ``docs/selection.md``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.losses import SoftLabelKD
from labkit.core.train import split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.augment import (
    ZSKD_COPIES_PER_IMAGE,
    zskd_authors_augmentations,
    zskd_authors_picked_copies,
)
from labkit.synthesis.base import settings_from
from labkit.synthesis.impressions import (  # the names notebooks and exercises import from here, too
    BETA_MODES,
    COPY_PHASE,
    PARAMETRISATIONS,
    DataImpressionSynthesizer,
    ImpressionSettings,
    class_similarity,
    dirichlet_concentration,
    dirichlet_targets,
    final_linear,
    impression_plan,
    minmax_rows,
    relabelled_copies,
    teacher_class_similarity,
)

__all__ = ["ZSKD", "ZSKDConfig", "impression_transfer_set", "DataImpressionSynthesizer", "ImpressionSettings",
           "class_similarity", "dirichlet_concentration", "dirichlet_targets", "final_linear", "impression_plan",
           "minmax_rows", "relabelled_copies", "teacher_class_similarity"]

#: The paper's number of Data Impressions per data set (docs/methods/zskd.md).
PAPER_IMPRESSIONS = {"mnist": 24_000, "fashion-mnist": 48_000, "cifar10": 40_000}
IMPRESSIONS = "impressions"
COPIES = "relabelled-copies"
AUTHORS_AUGMENTATION = "authors-augmentation"
AUTHORS_AUGMENTATION_PHASE = "relabel authors' augmentations"
CRAFT_PHASES = ("craft impressions", "label impressions")  # the impressions' phases (the copies': COPY_PHASE)

_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"ingredients": (IMPRESSIONS, COPIES), "impressions": 300, "iterations": 20, "craft_batch": 300,
              "epochs": 6, "batch_size": 32, "student_tau": 4.0},
    # 9000 x 16 steps (not 6000 x 25: same crafting cost) plus one copy each, student lr 1e-2 (validation split);
    # student_tau 4 (teacher-labelled holdout, seeds 0-2): docs/methods/zskd.md and docs/selection.md
    "laptop": {"ingredients": (IMPRESSIONS, COPIES), "impressions": 9000, "iterations": 16, "craft_batch": 3000,
               "epochs": 15, "batch_size": 128, "lr": 1e-2, "student_tau": 4.0},
    # a T4 (docs/cost.md): the paper's 48k impressions for 100 steps each, one relabelled copy each
    "gpu": {"ingredients": (IMPRESSIONS, COPIES), "impressions": PAPER_IMPRESSIONS["fashion-mnist"], "iterations": 100,
            "craft_batch": 8000, "epochs": 20, "batch_size": 256, "lr": 1e-2, "student_tau": 4.0},
    # the paper: 48k impressions for Fashion-MNIST (profile_values picks the data set's count), 1500 steps at 0.01
    "paper": {"ingredients": (IMPRESSIONS,), "impressions": PAPER_IMPRESSIONS["fashion-mnist"], "iterations": 1500,
              "craft_batch": 8000, "epochs": 40, "batch_size": 256, "craft_lr": 0.01, "variant": "paper"},
}


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ZSKDConfig(StudentRecipeConfig):
    """Sizes and settings of ZSKD; the per-profile values are :attr:`PROFILES`."""

    PROFILES = _PROFILES
    TITLE = "ZSKD option"
    #: the paper's mechanism: impressions only, β after the normalisation, Adam at 0.01 on the pixels, the student at
    #: the crafting τ
    VARIANTS = {"lab": {}, "paper": {"ingredients": (IMPRESSIONS,), "beta_mode": "paper", "student_tau": None,
                                     "craft_lr": 0.01},
                # the authors' public code (their CIFAR-10 scripts): β cancels, per-step min-max rescaling, lr 0.001,
                # warm-started chains, and the student on relabelled augmentations of every batch (batch 64, lr 1e-3)
                "authors-code": {"ingredients": (IMPRESSIONS, AUTHORS_AUGMENTATION), "beta_mode": "authors",
                                 "student_tau": None, "parametrisation": "minmax", "craft_lr": 1e-3,
                                 "warm_start": True, "batch_size": 64, "lr": 1e-3}}
    #: the paper variant's laptop size: the paper's 48k impressions, 25 Adam steps each, the student 30 epochs: the
    #: best points of the scaling study on the labelled validation split (docs/selection.md; converged crafting gave
    #: worse students)
    VARIANT_PROFILES = {"paper": {"laptop": {"impressions": PAPER_IMPRESSIONS["fashion-mnist"], "iterations": 25,
                                             "epochs": 30}},
                        # the authors' code at laptop size (its scaling study, chosen on the validation split): 200
                        # steps per chain link, 8 of the 106 copies per impression per step, lr 1e-2 for 15 epochs
                        "authors-code": {"laptop": {"impressions": 18_000, "iterations": 200, "lr": 1e-2,
                                                    "augmentations_per_step": 8},
                                         "smoke": {"augmentations_per_step": 8}}}
    INGREDIENTS = {IMPRESSIONS: "Data Impressions crafted from Dirichlet targets, labelled by the teacher at tau",
                   COPIES: "dark-border + blur copies of every impression, each relabelled by the teacher at tau",
                   AUTHORS_AUGMENTATION: "the authors' training script: every student batch replaced by its 106 "
                                         "fixed augmentations per impression, relabelled by the teacher at tau at "
                                         "every step"}

    INGREDIENT_SETTINGS = {COPIES: ("copies", "copy_box", "copy_blur"),
                           AUTHORS_AUGMENTATION: ("augmentations_per_step",)}

    ingredients: tuple[str, ...] = option(help="parts of the transfer set")
    impressions: int = option(help="number of Data Impressions to craft (paper: 48000 for Fashion-MNIST)")
    iterations: int = option(help="Adam steps per impression (paper: 1500)")
    craft_batch: int = option(help="impressions crafted at once (thousands on a GPU)")
    craft_lr: float = option(0.1, help="Adam learning rate on the pixels (paper: 0.01)")
    lr: float = option(5e-3, help="student learning rate (Adam, one-cycle)")
    tau: float = option(20.0, help="temperature for crafting, labelling and the student's KL")
    betas: tuple[float, ...] = option((1.0, 0.1), help="Dirichlet scales, an equal share of impressions each")
    beta_mode: str = option("paper", choices=BETA_MODES, help="paper: β scales the row-normalised similarity, as "
                            "the paper describes; authors: β scales before the normalisation, as the authors' code "
                            "does, so it cancels (every impression effectively β = 1)")
    student_tau: float | None = option(None, help="temperature of the student's KL and of its targets (re-tempered "
                                       "from the teacher's answers at tau); None: tau, as in the paper")
    variant: str = option("lab", choices=tuple(VARIANTS), help="paper: impressions only, the paper's β and τ; "
                          "authors-code: the authors' crafting (β cancels, minmax, lr 0.001, warm-started chains) and "
                          "their relabelled augmentations at every student step; "
                          "lab: the profile as is")
    parametrisation: str = option("clamp", choices=PARAMETRISATIONS,
                                  help="keep pixels in [0,1]: clamp after each Adam step, a sigmoid, or minmax (the "
                                       "authors' code: each group of chain_batch rescaled by its min and max)")
    warm_start: bool = option(False, help="craft in chains, one per class and beta (the authors' code): each link of "
                              "chain_batch impressions starts from the previous link's, Adam's state kept")
    chain_batch: int = option(100, help="impressions per chain link and per minmax group (the authors' batch: 100)")
    copies: int = option(1, help="relabelled dark-border/blur copies per impression (ingredient relabelled-copies)")
    augmentations_per_step: int = option(0, help="authors-augmentation: copies per impression per step, drawn afresh "
                                         "from the authors' 106 (0: all 106, as their script; fewer: the laptop's "
                                         "size knob)")
    copy_box: tuple[float, float] = option((0.3, 1.0), help="side of the kept centred box, fraction of the image side")
    copy_blur: tuple[float, float] = option((0.5, 1.5), help="Gaussian blur sigma range of the copies (pixels)")
    holdout_fraction: float = option(0.1, help="share of impressions kept aside (teacher-labelled) to select the epoch")
    snapshots: int = option(12, help="snapshots of the optimisation kept for the evolution plot", cli=False)

    @classmethod
    def profile_values(cls, profile: str, dataset: str | None = None) -> dict[str, Any]:
        """The profile's table; the paper profile takes the data set's impressions count (24k MNIST, 40k CIFAR-10)."""
        values = super().profile_values(profile, dataset)
        if profile == "paper":
            values["impressions"] = PAPER_IMPRESSIONS.get(dataset or "fashion-mnist", values["impressions"])
        return values

    def validate(self) -> None:
        """Raise :class:`~labkit.core.errors.ConfigError` with advice for settings that cannot work."""
        if self.impressions < 2:
            raise ConfigError("ZSKD needs at least 2 impressions (some are held out for model selection)")
        if min(self.iterations, self.craft_batch, self.chain_batch) < 1:
            raise ConfigError("iterations, craft_batch and chain_batch must be >= 1")
        if not self.betas or min(self.craft_lr, self.tau, *self.betas) <= 0:
            raise ConfigError(f"craft_lr, tau and the betas must be > 0 (betas not empty), got betas {self.betas}")
        if self.student_tau is not None and self.student_tau <= 0:
            raise ConfigError(f"student_tau must be > 0 (or None for tau), got {self.student_tau}")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError("holdout_fraction must lie strictly between 0 and 1")
        if self.uses(COPIES) and self.copies < 1:
            raise ConfigError(f"copies must be >= 1; to train without copies leave out the {COPIES!r} ingredient")
        if not 0 <= self.augmentations_per_step <= ZSKD_COPIES_PER_IMAGE:
            raise ConfigError(f"augmentations_per_step must lie in 0..{ZSKD_COPIES_PER_IMAGE} (0: all "
                              f"{ZSKD_COPIES_PER_IMAGE}), got {self.augmentations_per_step}")
        if not self.uses(IMPRESSIONS):
            raise ConfigError(f"the {COPIES!r} and {AUTHORS_AUGMENTATION!r} ingredients build on the impressions: "
                              f"keep {IMPRESSIONS!r} in ingredients")
        lo, hi = self.copy_box
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"copy_box must be 0 < low <= high <= 1 (fractions of the side), got {self.copy_box}")
        if not 0 < self.copy_blur[0] <= self.copy_blur[1]:
            raise ConfigError(f"copy_blur must be 0 < low <= high (pixels), got {self.copy_blur}")

    def impression_settings(self) -> ImpressionSettings:
        """The synthesizer's settings: the crafting steps, learning rate and batch, τ, the betas and snapshots."""
        return settings_from(ImpressionSettings, self, lr=self.craft_lr, batch_size=self.craft_batch)


def impression_transfer_set(box: BlackBox, images: torch.Tensor, soft_labels: torch.Tensor, cfg: ZSKDConfig, *,
                            seed: int = 0, desc: str = "ZSKD student") -> TransferSet:
    """The transfer set built from crafted impressions and their teacher soft labels at ``cfg.tau``.

    A ``cfg.holdout_fraction`` share of the impressions is held out and labelled with the teacher's top-1
    class (from the soft labels already queried). With the ``relabelled-copies`` ingredient every impression
    also gets ``cfg.copies`` :func:`relabelled_copies` (counted queries): copies of held-out impressions join
    the holdout, the others the training rows (impressions first, then their copies).
    """
    keep, hold = split_holdout(images.shape[0], cfg.holdout_fraction, seed, device=images.device)
    x_train, p_train, x_hold, p_hold = images[keep], soft_labels[keep], images[hold], soft_labels[hold]
    ingredients = [Ingredient(IMPRESSIONS, phases=CRAFT_PHASES, holdout_rows=int(hold.numel()))]
    source = torch.zeros(x_train.shape[0], dtype=torch.long, device=images.device)
    if cfg.uses(COPIES):  # copies of held-out impressions stay in the holdout: no copy leaks across the split
        parts = []
        for offset, (x, p) in enumerate(((x_train, p_train), (x_hold, p_hold))):
            xc, pc = relabelled_copies(box, x, cfg.copies, cfg.tau, seed=2 * seed + offset,
                                       box_fraction=cfg.copy_box, blur=cfg.copy_blur)
            parts.append((torch.cat([x, xc]), torch.cat([p, pc.to(p)]), int(xc.shape[0])))
        (x_train, p_train, n_copies), (x_hold, p_hold, n_hold_copies) = parts
        ingredients.append(Ingredient(COPIES, phases=(COPY_PHASE,), holdout_rows=n_hold_copies))
        source = torch.cat([source, torch.ones(n_copies, dtype=torch.long, device=images.device)])
    selection = f"teacher-labelled holdout of {int(hold.numel())} impressions" + (
        f" and their {cfg.copies} relabelled copies each" if cfg.uses(COPIES) else "")
    student_tau = cfg.tau if cfg.student_tau is None else cfg.student_tau
    if student_tau != cfg.tau:  # softmax(z/τ) re-tempered to softmax(z/τ_s): exact, no new query
        p_train = torch.softmax(torch.log(p_train.clamp_min(1e-30)) * (cfg.tau / student_tau), dim=1)
    hook = None
    if cfg.uses(AUTHORS_AUGMENTATION):
        hook = relabelled_augmentations(box, student_tau, cfg.augmentations_per_step)
        ingredients.append(Ingredient(AUTHORS_AUGMENTATION, phases=(AUTHORS_AUGMENTATION_PHASE,), rows=0))
    return TransferSet(x_train, (p_train,), "probabilities", SoftLabelKD(tau=student_tau),
                       cfg.recipe(desc=desc, batch_hook=hook), ingredients, source=source,
                       holdout=(x_hold, p_hold.argmax(1)), selection=selection)


def relabelled_augmentations(box: BlackBox, tau: float, per_step: int = 0
                              ) -> Callable[..., tuple[torch.Tensor, tuple[torch.Tensor]]]:
    """A student batch hook: the batch replaced by :func:`~labkit.synthesis.augment.zskd_authors_augmentations`
    of its impressions (all of them, or ``per_step`` of them per impression drawn afresh), each labelled by the
    teacher's softmax at ``tau`` (one counted query per image, phase ``"relabel authors' augmentations"``), fresh at
    every step as in the authors' training script."""
    def hook(x: torch.Tensor, targets: tuple[torch.Tensor, ...], gen: torch.Generator
             ) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        if 0 < per_step < ZSKD_COPIES_PER_IMAGE:  # only the drawn copies are built (impression-major rows)
            picks = torch.rand(x.shape[0], ZSKD_COPIES_PER_IMAGE, generator=gen).argsort(dim=1)[:, :per_step]
            xa = zskd_authors_picked_copies(x, picks)
        else:
            xa = zskd_authors_augmentations(x)  # augmentation-major: copy a of impression i is row a * n + i
        with torch.no_grad(), box.phase(AUTHORS_AUGMENTATION_PHASE):
            soft = torch.softmax(box(xa).float() / tau, dim=1)
        return xa, (soft,)
    return hook


# --------------------------------------------------------------------------- the method
@register_method
class ZSKD(DistillationMethod[ZSKDConfig]):
    """ZSKD (Nayak et al. 2019): craft Data Impressions through a white-box teacher from Dirichlet
    targets built on the final layer's class similarity; the student learns them with τ²·KL."""

    name = "zskd"
    access = "white"
    data_access = "none"
    summary = "ZSKD Data Impressions: white-box, no data; Dirichlet targets from class similarity"
    config_class = ZSKDConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Craft ``cfg.impressions`` impressions, label them (and their copies) with the teacher at τ."""
        assert box is not None  # check_box (the base class) refused a missing box
        cfg = self.config(ctx)
        similarity = teacher_class_similarity(box)
        synth = DataImpressionSynthesizer(box, cfg.impression_settings(), similarity=similarity, seed=ctx.seed)
        result = synth.synthesize(cfg.impressions, progress=ctx.progress)
        transfer = impression_transfer_set(box, result.images, result.targets, cfg, seed=ctx.seed)
        losses = torch.as_tensor(result.extras["loss_history"])
        transfer.extras = {"config": cfg.as_dict(), "impressions": len(result),
                           "crafting_loss_start": round(float(losses[0]), 4),
                           "crafting_loss_end": round(float(losses[-1]), 4),
                           "crafting_convergence": result.extras["convergence"],
                           "impressions_crafted": result.extras["crafted"], "chains": result.extras["chains"],
                           "class_similarity": [[round(float(v), 4) for v in row] for row in similarity.cpu()]}
        transfer.artifacts = {"synthesis": result, "similarity": similarity, "config": cfg}
        return transfer
