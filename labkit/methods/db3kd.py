"""DB3KD (Wang, ICML 2021): decision-based black-box KD with training data.

The teacher answers only top-1 class ids. For each of ``soft_size`` training samples ``x`` (teacher class ``y``)
and every other class ``t``, the method measures how far ``x`` is from the teacher's boundary toward ``t``
(:mod:`labkit.synthesis.boundary`) and turns the distances into a soft label::

    z_t = 1/d_t (t ≠ y),   z_y = Σ_{t≠y} 1/d_t,   p = softmax(z / τ)

``measure`` picks the distances: ``sd`` (nearest class-t training sample, no queries), ``bd`` (bisection toward
class-t samples, with pruning) or ``mbd`` (Sign-OPT from the BD solution). ``queries_per_sample`` caps each
soft-labelled sample's queries, label query included (:func:`pair_budgets` splits it per class). The ingredient
``true-label-rows`` adds the other ``train_size − soft_size`` samples with their true labels. The loss
(``"db3kd-distance"``, batch mean, one τ for labels and student)::

    ℓ = α·CE(S(x), y) + (1 − α)·τ²·KL(p ‖ softmax(S(x)/τ))   (soft-labelled rows)
    ℓ = CE(S(x), y)                                         (true-label rows)

where ``y`` is the true label. The epoch is selected on the labelled validation split. The paper's recipe, where
the lab differs and the experiments behind the profile sizes: ``docs/methods/db3kd.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.config import StudentRecipeConfig, ingredient_names, option
from labkit.core.errors import ConfigError, InvalidQueryError
from labkit.core.losses import build_loss, register_loss
from labkit.core.transfer import Ingredient, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis import boundary

MEASURES = ("sd", "bd", "mbd")
SOFT_LABELS = "distance-soft-labels"
TRUE_LABELS = "true-label-rows"
LABEL_PHASE = "teacher labels"  # box phase of the one label query per soft-labelled sample


@dataclass(frozen=True)
class DB3KDConfig(StudentRecipeConfig):
    """Sizes and settings of DB3KD (per profile; any field can be overridden)."""

    PROFILES = {
        "smoke": {"measure": "bd", "queries_per_sample": 60, "train_size": 1000, "soft_size": 300,
                  "epochs": 2, "batch_size": 128, "lr": 2e-3, "ingredients": (SOFT_LABELS, TRUE_LABELS)},
        # train_size None (all 55,000): picked on the validation split over 15k / 30k / all, docs/selection.md
        "laptop": {"measure": "bd", "queries_per_sample": 100, "train_size": None, "soft_size": 2000,
                   "epochs": 12, "batch_size": 128, "lr": 2e-3, "ingredients": (SOFT_LABELS, TRUE_LABELS)},
        # a T4 (docs/cost.md): ten times the laptop's soft-labelled rows at twice its queries each
        "gpu": {"measure": "bd", "queries_per_sample": 200, "train_size": None, "soft_size": 20_000,
                "epochs": 20, "batch_size": 256, "lr": 2e-3, "ingredients": (SOFT_LABELS, TRUE_LABELS)},
        "paper": {"measure": "mbd", "queries_per_sample": 2000, "train_size": None, "soft_size": None,
                  "epochs": 40, "batch_size": 256, "lr": 1e-3, "ingredients": (SOFT_LABELS,), "variant": "paper",
                  "n_probes": 200},
    }
    #: the paper's mechanism: every training row carries a distance soft label (no true-label rows)
    VARIANTS = {"lab": {}, "paper": {"ingredients": (SOFT_LABELS,), "soft_size": None,
                                     **boundary.AUTHORS_SIGNOPT.options()}}
    #: rows soft-labelled by the paper variant per profile (None: every training image): smoke by CI's time; laptop
    #: chosen on the validation split by the scaling study (2,000 / 10,000 / all, docs/selection.md)
    PAPER_VARIANT_ROWS: ClassVar[dict[str, int | None]] = {"smoke": 300, "laptop": None, "gpu": None,
                                                           "paper": None}
    VARIANT_PROFILES = {"paper": {p: {"train_size": rows} for p, rows in PAPER_VARIANT_ROWS.items()}}
    INGREDIENTS = {
        SOFT_LABELS: "soft_size training images with soft labels from boundary distances (the paper's transfer set)",
        TRUE_LABELS: "the other train_size - soft_size images, CE on the true label only (a lab addition)",
    }
    TITLE = "DB3KD option"

    measure: str = option(help="robustness measure: sd (no queries) | bd | mbd", choices=MEASURES)
    queries_per_sample: int = option(help="query budget per soft-labelled sample (a cap, label query included)")
    train_size: int | None = option(None, help="training samples used (None: all the runner gives)")
    soft_size: int | None = option(None, help="of those, how many get distance soft labels (None: all)")
    ingredients: tuple[str, ...] = option((SOFT_LABELS, TRUE_LABELS), help="parts of the transfer set")
    variant: str = option("lab", choices=tuple(VARIANTS), help="paper: every training row gets a distance soft "
                          "label (train_size rows sized for the profile, no true-label rows); lab: the profile as is")
    tau: float = option(20.0, help="soft-label and student temperature (authors: 20)")
    alpha: float = option(0.5, help="weight of CE on the true label for soft-labelled samples")
    n_directions: int = option(40, help="BD: most rays per (sample, class); the budget usually stops earlier")
    sd_samples: int = option(20, help="SD: random class-t samples per (sample, class)")
    bd_share: float = option(0.3, help="MBD: share of each pair's budget spent on BD before Sign-OPT")
    n_probes: int = option(20, help="MBD: Sign-OPT probes per gradient estimate")
    rtol: float = option(boundary.DEFAULT_RTOL, help="relative bisection tolerance")
    signopt_line_search: bool = option(False, help="MBD: Sign-OPT steps by the authors' line search (as ZSDB3KD's)")
    signopt_stall_reset: bool = option(False, help="MBD: a stalled Sign-OPT step resets α and shrinks β tenfold")
    signopt_tol_beta_divisor: float = option(0.0, help="MBD: candidates bisected to β / this (authors: 500); 0: rtol")

    def validate(self) -> None:
        """τ > 0, α in [0, 1], sizes ≥ 1, and true-label rows only where some rows are left."""
        if self.tau <= 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("DB3KD needs tau > 0 and 0 <= alpha <= 1")
        if any(s is not None and s < 1 for s in (self.train_size, self.soft_size)):
            raise ConfigError("train_size and soft_size must be >= 1 (or None for all)")
        if self.uses(TRUE_LABELS) and self.uses(SOFT_LABELS) and (
                self.soft_size is None or (self.train_size is not None and self.soft_size >= self.train_size)):
            raise ConfigError(f"ingredient {TRUE_LABELS!r} has no rows: soft_size ({self.soft_size or 'all'}) "
                              f"covers train_size ({self.train_size or 'all'}); lower soft_size or use "
                              f"ingredients=({SOFT_LABELS!r},)")


@register_loss("db3kd-distance")
class DistanceLabelLoss(nn.Module):
    """DB3KD's student loss (see the module doc): CE + τ²·KL on soft-labelled samples, CE on the rest."""

    def __init__(self, tau: float, alpha: float) -> None:
        super().__init__()
        self.tau, self.alpha = float(tau), float(alpha)

    def forward(self, logits: torch.Tensor, soft: torch.Tensor, labels: torch.Tensor,
                has_soft: torch.Tensor) -> torch.Tensor:
        """Batch mean of the per-sample loss; ``has_soft`` marks rows whose ``soft`` is a real label."""
        logits = logits.float()
        ce = F.cross_entropy(logits, labels, reduction="none")
        log_q = F.log_softmax(logits / self.tau, dim=1)
        p = soft.float()
        kl = (p * (torch.log(p.clamp_min(1e-12)) - log_q)).sum(1) * self.tau ** 2
        per_sample = torch.where(has_soft, self.alpha * ce + (1 - self.alpha) * kl, ce)
        return per_sample.mean()


#: the settings that shape the boundary distances (the cost model's calibration labels a few images with them)
DISTANCE_FIELDS = ("measure", "queries_per_sample", "n_directions", "n_probes", "rtol", "bd_share", "sd_samples",
                   "signopt_line_search", "signopt_stall_reset", "signopt_tol_beta_divisor")


def pair_budgets(queries: int, num_classes: int, measure: str, bd_share: float) -> tuple[int, int]:
    """Split a per-sample budget (label query included) into (BD, Sign-OPT) queries per (sample, class) pair."""
    if measure == "sd":
        return 0, 0
    per_pair = (int(queries) - 1) // (num_classes - 1)
    if per_pair < 2:
        raise InvalidQueryError(f"--queries-per-sample {queries} is too small: DB3KD needs at least "
                                f"1 + 2·(C−1) = {1 + 2 * (num_classes - 1)} queries per sample for {measure.upper()}.")
    if measure == "bd":
        return per_pair, 0
    bd = max(2, int(round(per_pair * bd_share)))
    return bd, per_pair - bd


def signopt_probes(pair_budget: int, n_probes: int) -> int:
    """Probes per Sign-OPT step that leave room for at least two steps (probes + check + ~7 bisections each)."""
    return max(2, min(n_probes, (pair_budget // 2) - 8))


def search_phase(measure: str) -> str:
    """The box phase that holds the boundary searches of ``measure``."""
    return f"{measure} search"


def distance_labels(box: BlackBox | None, x: torch.Tensor, y_true: torch.Tensor, num_classes: int,
                    cfg: DB3KDConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distances and soft labels for ``x`` under ``cfg.measure``; all teacher queries go through ``box``.

    Returns ``distance (N, C)``, ``soft (N, C)``, ``teacher_label (N,)`` (the true label for SD,
    which asks nothing) and ``queries (N,)`` per sample, label query included.
    """
    if cfg.measure == "sd":
        res = boundary.sample_distance(x, x, y_true, num_classes, cfg.sd_samples, seed=seed)
        y0 = y_true
        queries = res.queries
    else:
        if box is None or box.access != "decision":
            raise InvalidQueryError("DB3KD's BD and MBD need a decision box (BlackBox(model, access='decision')).")
        bd_q, so_q = pair_budgets(cfg.queries_per_sample, num_classes, cfg.measure, cfg.bd_share)
        with box.phase(LABEL_PHASE):
            y0 = box(x)  # one call; the box chunks by memory
        with box.phase(search_phase(cfg.measure)):
            if cfg.measure == "bd":
                res = boundary.boundary_distance(box, x, y0, x, y0, num_classes, cfg.n_directions,
                                                 queries_per_pair=bd_q, rtol=cfg.rtol, seed=seed)
            else:
                res = boundary.minimal_boundary_distance(box, x, y0, x, y0, num_classes, cfg.n_directions,
                                                         bd_queries_per_pair=bd_q, signopt_queries_per_pair=so_q,
                                                         n_probes=signopt_probes(so_q, cfg.n_probes), rtol=cfg.rtol,
                                                         seed=seed, rule=boundary.SignOptRule.of(cfg))
        queries = res.queries + 1
    soft = boundary.distance_soft_labels(res.distance, y0, cfg.tau)
    return {"distance": res.distance.float(), "soft": soft, "teacher_label": y0, "queries": queries}


def label_facts(labels: dict[str, torch.Tensor], num_classes: int) -> dict[str, float | int]:
    """Per-sample query and reach statistics of :func:`distance_labels`' output (zeros when it is empty)."""
    q = labels["queries"].float()
    if q.numel() == 0:
        return {"queries_per_sample": 0.0, "max_queries_per_sample": 0, "reached_classes_per_sample": 0.0}
    own = F.one_hot(labels["teacher_label"].long(), num_classes).bool()
    reached = torch.isfinite(labels["distance"]) & ~own
    return {"queries_per_sample": round(float(q.mean()), 2), "max_queries_per_sample": int(q.max()),
            "reached_classes_per_sample": round(float(reached.sum(1).float().mean()), 2)}


@register_method
class DB3KD(DistillationMethod[DB3KDConfig]):
    """DB3KD: soft labels from distances to a decision-only teacher's boundaries (SD, BD or MBD), then KD."""

    name = "db3kd"
    access = "decision"
    compile_teacher_profiles = ("paper",)  # tens of millions of box images: compiling pays back
    data_access = "labeled"
    summary = "DB3KD: decision-based black-box KD with data (boundary distances -> soft labels)"
    config_class = DB3KDConfig

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        chosen = self.options.get("ingredients")
        if chosen is not None and SOFT_LABELS not in ingredient_names(chosen):
            self.access = "none"  # true-label rows alone never ask the teacher: the runner builds no box

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Soft-label ``soft_size`` training images through the decision box; the rest keep their true labels."""
        if data.train is None or data.val is None:
            raise ConfigError("DB3KD needs labeled training data (data_access='labeled')")
        cfg = self.config(ctx)
        train = data.train
        gen = torch.Generator().manual_seed(ctx.seed)
        n_train = len(train) if cfg.train_size is None else min(cfg.train_size, len(train))
        order = torch.randperm(len(train), generator=gen)[:n_train].to(train.x.device)
        x, y = train.x[order], train.y[order]
        if not cfg.uses(SOFT_LABELS):
            n_soft = 0
        else:
            n_soft = n_train if cfg.soft_size is None else min(cfg.soft_size, n_train)
        if cfg.uses(TRUE_LABELS) and n_soft >= n_train:
            raise ConfigError(f"ingredient {TRUE_LABELS!r} has no rows: all {n_train} training images are "
                              f"soft-labelled; lower soft_size or use ingredients=({SOFT_LABELS!r},)")
        n_rows = n_train if cfg.uses(TRUE_LABELS) else n_soft
        c = ctx.info.num_classes
        recipe = cfg.recipe(desc=f"DB3KD ({cfg.measure})")
        extras: dict[str, Any] = {
            "config": cfg.as_dict(), "measure": cfg.measure, "soft_labelled": n_soft, "train_size": n_rows,
            "budget_per_sample": cfg.queries_per_sample if cfg.measure != "sd" and n_soft else 0,
        }
        if n_soft == 0:  # true-label rows alone: plain CE on the true labels, no teacher query
            extras.update(label_facts({"queries": torch.zeros(0)}, c))
            return TransferSet(x, (y,), "class-ids", build_loss("ce"), recipe, [Ingredient(TRUE_LABELS)],
                               extras=extras, artifacts={"index": order})
        labels = distance_labels(box, x[:n_soft], y[:n_soft], c, cfg, seed=ctx.seed)
        soft = torch.zeros(n_rows, c, device=x.device)
        soft[:n_soft] = labels["soft"].to(x.device)
        has_soft = torch.zeros(n_rows, dtype=torch.bool, device=x.device)
        has_soft[:n_soft] = True
        source = (~has_soft).long()  # 0: distance-soft-labels, 1: true-label-rows
        phases = () if cfg.measure == "sd" else (LABEL_PHASE, search_phase(cfg.measure))
        ingredients = [Ingredient(SOFT_LABELS, phases=phases)]
        if cfg.uses(TRUE_LABELS):
            ingredients.append(Ingredient(TRUE_LABELS))
        extras.update(label_facts(labels, c))
        artifacts = {"x": x[:n_soft], "y": y[:n_soft], "index": order[:n_soft], **labels}
        return TransferSet(x[:n_rows], (soft, y[:n_rows], has_soft), "distance-soft-labels",
                           DistanceLabelLoss(cfg.tau, cfg.alpha), recipe, ingredients, source=source,
                           selection="validation split", extras=extras, artifacts=artifacts)
