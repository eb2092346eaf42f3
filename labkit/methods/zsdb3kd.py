"""ZSDB3KD: zero-shot pseudo-samples from a decision-only teacher (Wang, ICML 2021).

No data at all, and the teacher answers only top-1 class ids. The paper's recipe (ingredient
``pseudo-samples``; the machinery is in :mod:`labkit.synthesis.pseudo_samples`):

1. draw noise (:mod:`labkit.synthesis.noise`) and keep each image the teacher puts in a class that still needs
   samples, until every class has ``per_class`` (rejection sampling, one query per draw);
2. find each image's nearest decision boundary (random rays + bisection, then untargeted Sign-OPT)
   and step *away* from it, ``x <- clip(x - λ·θ*, 0, 1)``, halving λ where the label would change;
   repeat ``iterations`` times;
3. label the final images with DB3 soft labels (boundary distances to every other class, τ = 20)
   and train the student on ``α·CE(S, y) + (1 − α)·τ²·KL(p ‖ softmax(S/τ))`` (loss ``"soft-kd"``).

The epoch is selected on a teacher-labelled holdout of the pseudo-samples (every pseudo-sample's
class is verified by the step's check query). The lab's additions (ingredients, off in the paper
profile): ``pseudo-sample-paths`` (each pseudo-sample's earlier states join the training set with
its soft label), ``noise-bank`` (a class-balanced draw of the teacher-labelled noise draws, at no extra
query) and ``mixup`` (part of every batch replaced by mixups relabelled by one query each); and the
starting noise, ``noise="dead-leaves"`` instead of the authors' i.i.d. pixels (smoke and laptop).
``variant="paper"`` (and the paper profile) switches all of them off: the authors' noise, pseudo-samples
only. ``noise-kd`` (:mod:`labkit.methods.noise_kd`) trains on the noise bank alone, the floor the
search has to beat. Measurements: ``docs/methods/zsdb3kd.md``.

With ``curve_points > 0``, :meth:`ZSDB3KD.after_training` also trains students on the images of a few
earlier iterations (queries under the phase ``"accuracy curve"``) for notebook 05's accuracy curve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, option
from labkit.core.errors import ConfigError
from labkit.core.losses import SoftLabelKD
from labkit.core.train import FitResult, split_holdout
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method, train_student
from labkit.synthesis.base import settings_from
from labkit.synthesis.boundary import AUTHORS_SIGNOPT
from labkit.synthesis.mixup import relabelled_mixup_hook
from labkit.synthesis.noise import NOISE_FAMILIES
from labkit.synthesis.pseudo_samples import (
    PseudoSampleSettings,
    PseudoSampleSynthesizer,
    class_mean_soft_labels,
    pseudo_sample_soft_labels,
)
from labkit.synthesis.query_recorder import QueryRecorder

_ALL = ("pseudo-samples", "pseudo-sample-paths", "noise-bank", "mixup")
_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(ingredients=_ALL, per_class=3, iterations=3, n_directions=3, warm_directions=1,
                  signopt_queries=20, label_directions=1, n_probes=6, epochs=3, batch_size=16, lr=2e-3,
                  snapshot_every=1, snapshot_per_class=3, init_batch=4096, max_init_draws=400_000,
                  min_init_draws=16_384, bank_per_class=300, pseudo_repeat=1, curve_points=1, noise="dead-leaves"),
    "laptop": dict(ingredients=("pseudo-samples", "pseudo-sample-paths", "noise-bank"), per_class=40, iterations=10,
                   n_directions=8, warm_directions=1, signopt_queries=40, label_directions=2, n_probes=10, epochs=4,
                   batch_size=256, lr=4e-3, snapshot_every=2, snapshot_per_class=6, init_batch=8192,
                   max_init_draws=3_000_000, min_init_draws=200_000, bank_per_class=6000, pseudo_repeat=3,
                   curve_points=2, noise="dead-leaves"),
    # the authors' sizes: 3000 per class, 40 iterations, ~5000 Sign-OPT queries per image and iteration, 200 probes
    "paper": dict(ingredients=("pseudo-samples",), per_class=3000, iterations=40, n_directions=20, warm_directions=19,
                  signopt_queries=5000, label_directions=200, n_probes=200, epochs=40, batch_size=256, lr=1e-3,
                  snapshot_every=5, snapshot_per_class=6, init_batch=65536, max_init_draws=200_000_000,
                  min_init_draws=200_000, bank_per_class=6000, pseudo_repeat=1, curve_points=4, noise="authors",
                  variant="paper"),
}


#: a T4 (docs/cost.md): the laptop's lab recipe with 2.5 times the pseudo-samples and twice the iterations
_PROFILES["gpu"] = {**_PROFILES["laptop"], "per_class": 100, "iterations": 20, "signopt_queries": 100, "epochs": 6,
                    "snapshot_every": 4}
#: the authors' code's search and step (their untargeted_mbd.py and get_pseudo_samples.py): fresh rays at every
#: iteration, Sign-OPT's line search, the α reset with a β shrink, bisection to β/500, λ halved until the label holds
#: (docs/methods/zsdb3kd.md)
AUTHORS_SEARCH = {"warm_start": False, **AUTHORS_SIGNOPT.options(), "max_halvings": -1}


@dataclass(frozen=True)
class ZSDB3KDConfig(StudentRecipeConfig):
    """Sizes and settings of ZSDB3KD (per-profile table ``PROFILES``; override any field by keyword)."""

    PROFILES = _PROFILES
    TITLE = "ZSDB3KD option"
    #: the paper's mechanism: the authors' noise, pseudo-samples with their DB3 soft labels only
    VARIANTS = {"lab": {}, "paper": {"ingredients": ("pseudo-samples",), "noise": "authors",
                                     "noise_fallback": ("smooth", "dead-leaves"), **AUTHORS_SEARCH}}
    #: the paper variant's student recipe where the profile's (sized for the lab's 45k-row transfer set) would
    #: train 400 pseudo-samples for a handful of steps: picked on the pseudo-samples' teacher-labelled holdout
    #: among (4, 256), (40, 256), (40, 32), (100, 32) epochs and batch size, seeds 0-2; its sizes (100 per class,
    #: 20 iterations, 400 Sign-OPT queries) by its scaling study on the labelled validation split (docs/selection.md)
    VARIANT_PROFILES = {"paper": {"laptop": {"epochs": 100, "batch_size": 32, "per_class": 100, "iterations": 20,
                                             "signopt_queries": 400}}}
    INGREDIENTS = {
        "pseudo-samples": "the paper's: noise pushed away from its nearest boundary, DB3 distance soft labels",
        "pseudo-sample-paths": "lab: every training pseudo-sample's earlier states (label verified by each step), "
                               "with its soft label",
        "noise-bank": "lab: bank_per_class teacher-labelled noise draws per class (from at least min_init_draws), "
                      "with the class's mean soft label",
        "mixup": "lab: mixup_fraction of every batch replaced by mixups of two pseudo-samples, one query each",
    }

    ingredients: tuple[str, ...] = option(help="parts of the transfer set")
    per_class: int = option(help="pseudo-samples per class")
    iterations: int = option(help="search-and-step iterations")
    n_directions: int = option(help="random rays of the first nearest-boundary search")
    warm_directions: int = option(help="fresh random rays of later searches (plus the previous direction)")
    signopt_queries: int = option(help="untargeted Sign-OPT queries per image and iteration")
    label_directions: int = option(help="boundary-distance rays per (sample, other class) for the soft labels")
    n_probes: int = option(help="Sign-OPT probes per gradient estimate")
    snapshot_every: int = option(help="iterations between snapshots (notebook 05's slider)")
    snapshot_per_class: int = option(help="images per class kept in every snapshot")
    init_batch: int = option(help="noise images per rejection-sampling draw")
    max_init_draws: int = option(help="cap on noise images drawn for the starting samples")
    min_init_draws: int = option(help="with noise-bank: noise images drawn at least (every one recorded)")
    bank_per_class: int = option(help="with noise-bank: recorded noise draws per class in the training set")
    pseudo_repeat: int = option(help="with noise-bank: times each pseudo-sample and path image appears")
    curve_points: int = option(help="earlier iterations at which a student is also trained (accuracy curve; 0: none)")
    noise: str = option(help="starting-noise family (authors: i.i.d. pixels; smooth: low-frequency blobs; "
                             "dead-leaves: stacked flat shapes)", choices=tuple(NOISE_FAMILIES))
    noise_fallback: tuple[str, ...] = option((), help="noise families tried in turn for a class the starting noise "
                                             "does not reach within max_init_draws at its rate (the paper variant: "
                                             "smooth, then dead-leaves; the authors' code would draw forever)")
    mixup_fraction: float = option(0.5, help="with mixup: share of each training batch replaced by relabelled mixups")
    step_size: float = option(0.5, help="λ, the L2 length of a step away from the boundary")
    max_halvings: int = option(5, help="how often λ is halved for an image whose label would change (-1: until "
                               "the label holds, as the authors' code)")
    warm_start: bool = option(True, help="from iteration 2 on, the previous direction is one more candidate ray (a "
                              "lab addition); off: fresh random rays at every iteration, as the authors' code")
    signopt_line_search: bool = option(False, help="Sign-OPT's step by the authors' line search: the mean signed "
                                       "probe, α doubled while the distance shrinks, else quartered (lab: one "
                                       "normalised step)")
    signopt_stall_reset: bool = option(False, help="a Sign-OPT step below 1e-4 resets α to 1 and shrinks the probe "
                                       "radius β tenfold, as the authors' code (lab: the search stops)")
    signopt_tol_beta_divisor: float = option(0.0, help="Sign-OPT measures each candidate by a x0.99 bracket and "
                                             "bisection to β / this, as the authors' code (500); 0: bisection to "
                                             "the lab's relative tolerance 2^-7")
    tau: float = option(20.0, help="soft-label temperature (and the KL's)")
    alpha: float = option(0.5, help="weight of the hard-label CE term")
    holdout_fraction: float = option(0.1, help="pseudo-samples kept aside (teacher-labelled) to select the epoch")
    variant: str = option("lab", choices=tuple(VARIANTS), help="paper: the authors' noise and the pseudo-samples "
                          "alone (every lab ingredient off); lab: the profile as is")

    def validate(self) -> None:
        """Pseudo-samples are always built; sizes must be positive; the noise family must exist."""
        if "pseudo-samples" not in self.ingredients:
            raise ConfigError("ZSDB3KD always builds its pseudo-samples: every other ingredient (paths, noise-bank "
                              "soft labels, mixups) is made from them; add 'pseudo-samples' to the ingredients")
        if min(self.per_class, self.init_batch, self.max_init_draws) < 1:
            raise ConfigError("per_class, init_batch and max_init_draws must be >= 1")
        unknown = [f for f in self.noise_fallback if f not in NOISE_FAMILIES]
        if unknown:
            raise ConfigError(f"unknown noise_fallback famil{'ies' if len(unknown) > 1 else 'y'} {unknown}; choose "
                              f"from {sorted(NOISE_FAMILIES)}")
        if self.max_halvings < -1 or self.signopt_tol_beta_divisor < 0:
            raise ConfigError("max_halvings must be >= 0 (or -1: until the label holds) and "
                              "signopt_tol_beta_divisor >= 0 (0: the lab's relative tolerance)")
        if self.iterations < 0 or self.tau <= 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("ZSDB3KD needs iterations >= 0, tau > 0 and 0 <= alpha <= 1")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError("holdout_fraction must lie in (0, 1)")
        if self.uses("mixup") and not 0 < self.mixup_fraction <= 1:
            raise ConfigError("the mixup ingredient needs 0 < mixup_fraction <= 1")
        if self.uses("noise-bank") and (self.bank_per_class < 1 or self.pseudo_repeat < 1):
            raise ConfigError("the noise-bank ingredient needs bank_per_class >= 1 and pseudo_repeat >= 1")

    def pseudo_sample_settings(self) -> PseudoSampleSettings:
        """The synthesizer's settings: this config's sizes, and whether it keeps the noise bank and the paths."""
        return settings_from(PseudoSampleSettings, self, keep_noise_bank=self.uses("noise-bank"),
                             keep_paths=self.uses("pseudo-sample-paths"))


PSEUDO_SAMPLE_PHASES = ("initial noise", "nearest boundary", "step away", "soft labels")


def pseudo_sample_transfer_set(x: torch.Tensor, soft: torch.Tensor, y: torch.Tensor, cfg: ZSDB3KDConfig,
                               ctx: RunContext, box: BlackBox, recorder: QueryRecorder | None = None,
                               trajectory: torch.Tensor | None = None, mixup_phase: str = "relabel mixup",
                               desc: str = "ZSDB3KD student") -> TransferSet:
    """The transfer set of pseudo-samples ``(x, soft, y)`` and the configured lab ingredients.

    A ``cfg.holdout_fraction`` share of the pseudo-samples is the selection holdout. ``trajectory``
    (``(T, N, *shape)``, ``pseudo-sample-paths``) adds each training pseudo-sample's earlier states with its
    soft label. With ``noise-bank``, ``cfg.bank_per_class`` recorded noise draws per class join (their teacher
    class and the class's mean soft label), a few more per class join the holdout, and the pseudo-samples and
    paths appear ``cfg.pseudo_repeat`` times (``Ingredient.rows`` counts each distinct image once).
    """
    c = ctx.info.num_classes
    keep, hold = split_holdout(x.shape[0], cfg.holdout_fraction, ctx.seed, x.device)
    hook = relabelled_mixup_hook(box, soft[keep], y[keep], cfg.mixup_fraction, c, mixup_phase) \
        if cfg.uses("mixup") else None
    tx, ts, ty, hx, hy = x[keep], soft[keep], y[keep], x[hold], y[hold]
    k = int(keep.numel())
    names = [n for n in ZSDB3KDConfig.INGREDIENTS if cfg.uses(n)]
    phases = {"pseudo-samples": PSEUDO_SAMPLE_PHASES, "noise-bank": ("noise bank",), "mixup": (mixup_phase,)}
    ingredients = {n: Ingredient(n, phases.get(n, ()), rows=0) for n in names}
    ingredients["pseudo-samples"].rows, ingredients["pseudo-samples"].holdout_rows = k, int(hold.numel())
    source = torch.full((k,), names.index("pseudo-samples"), dtype=torch.long)
    if trajectory is not None and trajectory.shape[0] > 0:
        steps = trajectory.shape[0]
        tx = torch.cat([tx, trajectory[:, keep].reshape((-1,) + tuple(x.shape[1:])).to(x.device)])
        ts, ty = torch.cat([ts, ts[:k].repeat(steps, 1)]), torch.cat([ty, ty[:k].repeat(steps)])
        source = torch.cat([source, torch.full((k * steps,), names.index("pseudo-sample-paths"), dtype=torch.long)])
        ingredients["pseudo-sample-paths"].rows = k * steps
    if recorder is not None and len(recorder) > 0:
        rep = cfg.pseudo_repeat
        tx, ts, ty = tx.repeat((rep,) + (1,) * (x.dim() - 1)), ts.repeat(rep, 1), ty.repeat(rep)
        per_hold = max(1, int(round(cfg.bank_per_class * cfg.holdout_fraction / 2)))
        draw = recorder.balanced(cfg.bank_per_class, c, ctx.seed, per_hold)
        bx, by = draw.x.to(x.device), draw.y.to(x.device)
        tx, ts, ty = torch.cat([tx, bx]), torch.cat([ts, class_mean_soft_labels(soft, y, c)[by]]), torch.cat([ty, by])
        hx, hy = torch.cat([hx, draw.holdout_x.to(x.device)]), torch.cat([hy, draw.holdout_y.to(x.device)])
        source = torch.cat([source.repeat(rep), torch.full((by.numel(),), names.index("noise-bank"), dtype=torch.long)])
        ingredients["noise-bank"].rows, ingredients["noise-bank"].holdout_rows = draw.distinct, draw.holdout_y.numel()
    selection = "teacher-labelled holdout of the pseudo-samples"
    selection += " and of the noise bank" if recorder is not None else ""
    return TransferSet(tx, (ts, ty), "distance-soft-labels", SoftLabelKD(tau=cfg.tau, alpha=cfg.alpha),
                       cfg.recipe(batch_hook=hook, desc=desc),
                       list(ingredients.values()), source=source.to(x.device), holdout=(hx, hy), selection=selection)


@register_method
class ZSDB3KD(DistillationMethod[ZSDB3KDConfig]):
    """ZSDB3KD: pseudo-samples grown from noise away from a decision-only teacher's boundaries, DB3 soft labels."""

    name = "zsdb3kd"
    access = "decision"
    compile_teacher_profiles = ("paper",)  # tens of millions of box images: compiling pays back
    data_access = "none"
    summary = "ZSDB3KD: zero-shot pseudo-samples from a decision-only teacher, DB3 distance soft labels"
    config_class = ZSDB3KDConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Synthesize the pseudo-samples (and the configured lab ingredients) and return their transfer set."""
        assert box is not None  # check_box (the base class) refused a missing box
        cfg = self.config(ctx)
        info = ctx.info
        q_start = box.queries
        synth = PseudoSampleSynthesizer(box, cfg.pseudo_sample_settings(), info.num_classes, info.image_shape,
                                        ctx.seed, ctx.device)
        result = synth.synthesize(cfg.per_class * info.num_classes, progress=ctx.progress)
        x, soft, ex = result.images, result.targets, result.extras
        y, recorder, trajectory = ex["labels"], ex["recorder"], ex["trajectory"]
        assert isinstance(y, torch.Tensor) and (recorder is None or isinstance(recorder, QueryRecorder))
        assert trajectory is None or isinstance(trajectory, torch.Tensor)
        transfer = pseudo_sample_transfer_set(x, soft, y, cfg, ctx, box, recorder, trajectory)
        history: list[dict[str, Any]] = ex["history"]  # type: ignore[assignment]
        transfer.extras.update({
            "config": cfg.as_dict(), "pseudo_samples": len(result), "init_draws": ex["init_draws"],
            "init_hits_per_class": ex["init_hits_per_class"], "init_draws_per_family": ex["init_draws_per_family"],
            "init_kept_per_family": ex["init_kept_per_family"], "generation_queries": ex["generation_queries"],
            "label_queries": ex["label_queries"], "recorded_draws": len(recorder) if recorder is not None else 0,
            "mean_distance_by_iteration": [h["mean_distance"] for h in history],
        })
        transfer.artifacts.update({
            "images": x, "soft_labels": soft, "labels": y, "snapshots": result.snapshots, "history": history,
            "distances": ex["distances"], "nearest_distance": ex["nearest_distance"],
            "checkpoints": ex["checkpoints"], "recorder": recorder, "trajectory": trajectory,
            "queries_at_start": q_start,
        })
        return transfer

    def after_training(self, transfer: TransferSet, student: nn.Module, fit: FitResult, box: BlackBox | None,
                       data: MethodData, ctx: RunContext) -> None:
        """Query totals, and the accuracy curve: a student on the images of every checkpointed iteration.

        Each curve student is labelled and trained like the final one (same ingredients; the noise bank
        and the paths up to that iteration) through :func:`~labkit.methods.base.train_student`; its
        queries (soft labels, mixups) are counted under the phase ``"accuracy curve"``.
        """
        assert box is not None
        cfg, art = self.config(ctx), transfer.artifacts
        recorder, trajectory = art.pop("recorder"), art.pop("trajectory")
        y = art["labels"]
        method_queries = box.queries - art["queries_at_start"]
        curve: list[dict[str, Any]] = []
        for cp in art["checkpoints"]:
            before = box.queries
            with box.phase("accuracy curve"):
                cp_soft, _ = pseudo_sample_soft_labels(box, cp["images"], y, ctx.info.num_classes,
                                                       cfg.label_directions, cfg.tau, ctx.seed)
                cp_set = pseudo_sample_transfer_set(
                    cp["images"], cp_soft, y, cfg, ctx, box, recorder,
                    None if trajectory is None else trajectory[: cp["iteration"]], mixup_phase="accuracy curve",
                    desc=f"student @ iteration {cp['iteration']}")
                cp_student, cp_fit = train_student(cp_set, ctx)
            curve.append({"iteration": cp["iteration"], "queries": int(cp["queries"] + box.queries - before),
                          "student": cp_student, "holdout_acc": cp_fit.best_val_acc})
        curve.append({"iteration": cfg.iterations, "queries": method_queries, "student": student,
                      "holdout_acc": fit.best_val_acc})
        art["curve"] = curve
        transfer.extras.update({
            "method_queries": method_queries, "mixup_queries": box.queries_by_phase.get("relabel mixup", 0),
            "queries_per_sample": method_queries / max(1, transfer.extras["pseudo_samples"]),
            "curve": [{k: v for k, v in row.items() if k != "student"} for row in curve],
        })
