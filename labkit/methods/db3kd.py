"""DB3KD (Wang, ICML 2021): decision-based black-box KD with training data.

The teacher answers only top-1 class ids. DB3KD measures, for every training sample
``x`` (teacher class ``y``) and every other class ``t``, how far ``x`` is from the
teacher's boundary toward ``t`` (:mod:`labkit.boundary`), and turns the distances
into a soft label::

    z_t = 1/d_t (t ≠ y),   z_y = Σ_{t≠y} 1/d_t,   p = softmax(z / τ)

Three robustness measures give the distances: ``sd`` (nearest class-t training
sample, no queries), ``bd`` (bisection toward class-t samples, with pruning) and
``mbd`` (Sign-OPT from the BD solution).

**Query budget.** ``queries`` is a per-sample cap that includes the one query for
the sample's teacher label. The lab's searches are budget-aware: BD spends
``(queries − 1) // (C − 1)`` per (sample, class) pair, MBD gives ``bd_share`` of that
to BD and the rest to Sign-OPT. The authors spend up to 20k per pair (≈180k per
sample); a bisection to 1 % needs about 7 queries per ray.

**Which samples get soft labels.** The student trains on ``train_size`` training
samples (default: all the runner provides). ``soft_size`` of them (default: all)
get distance soft labels; only those are queried. The rest keep their true labels.

**Loss (the lab's choice, tested).** Per sample, with the *same* τ for the labels
and the student (as the authors)::

    ℓ = α·CE(S(x), y) + (1 − α)·τ²·KL(p ‖ softmax(S(x)/τ))   (samples with a soft label)
    ℓ = CE(S(x), y)                                         (samples without one)

averaged over the batch (batch mean). The τ² keeps the soft term's gradient
independent of τ (Hinton). The authors' code instead adds CE and the KL *summed*
over the batch, with no τ²; at batch 128 and τ = 20 that is a comparable weight,
but it depends on the batch size. ``y`` is the true label (the data are labelled).

Model selection: best epoch on the labelled validation split.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import boundary
from ..blackbox import BlackBox
from ..errors import InvalidQueryError, UnknownNameError
from ..profiles import Profile, pick
from ..train import fit
from .base import DistillationMethod, DistillOutput, MethodData, RunContext, register_method

MEASURES = ("sd", "bd", "mbd")


@dataclass(frozen=True)
class DB3KDConfig:
    """Sizes and settings of DB3KD (per profile; any field can be overridden)."""

    epochs: int
    batch_size: int
    lr: float
    measure: str = "bd"
    queries: int = 200             # per soft-labelled sample, label query included
    tau: float = 20.0              # soft-label and student temperature (authors: 20)
    alpha: float = 0.5             # weight of CE on the true label for soft-labelled samples
    train_size: int | None = None  # training samples used (None: all the runner gives); laptop: 30k fits a CPU
    soft_size: int | None = None   # of those, how many get distance soft labels (None: all); laptop: 2k
    n_directions: int = 40         # BD: most rays per (sample, class); the budget usually stops earlier
    sd_samples: int = 20           # SD: random class-t samples per (sample, class)
    bd_share: float = 0.3          # MBD: share of each pair's budget spent on BD before Sign-OPT
    n_probes: int = 20             # MBD: Sign-OPT probes per gradient estimate
    rtol: float = boundary.DEFAULT_RTOL  # relative bisection tolerance

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: object) -> "DB3KDConfig":
        """The profile's defaults with any non-None overrides (unknown names are refused)."""
        base = cls(
            epochs=profile.student_epochs, batch_size=profile.batch_size,
            lr=2e-3 if profile.name != "paper" else 1e-3,
            measure=str(pick(profile, "bd", "bd", "mbd")),
            queries=int(pick(profile, 60, 100, 2000)),
            train_size=pick(profile, 1000, 30000, None),  # type: ignore[arg-type]
            soft_size=pick(profile, 300, 2000, None),  # type: ignore[arg-type]
        )
        unknown = set(overrides) - set(asdict(base))
        if unknown:
            raise UnknownNameError("DB3KD option", sorted(unknown)[0], sorted(asdict(base)))
        cfg = cls(**{**asdict(base), **{k: v for k, v in overrides.items() if v is not None}})
        if cfg.measure not in MEASURES:
            raise UnknownNameError("DB3KD measure", cfg.measure, MEASURES)
        if cfg.tau <= 0 or not 0 <= cfg.alpha <= 1:
            raise ValueError("DB3KD needs tau > 0 and 0 <= alpha <= 1")
        return cfg


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


def pair_budgets(queries: int, num_classes: int, measure: str, bd_share: float) -> tuple[int, int]:
    """Split a per-sample budget (label query included) into (BD, Sign-OPT) queries per (sample, class) pair."""
    if measure == "sd":
        return 0, 0
    per_pair = (int(queries) - 1) // (num_classes - 1)
    if per_pair < 2:
        raise InvalidQueryError(f"--queries {queries} is too small: DB3KD needs at least 1 + 2·(C−1) = "
                                f"{1 + 2 * (num_classes - 1)} queries per sample for {measure.upper()}.")
    if measure == "bd":
        return per_pair, 0
    bd = max(2, int(round(per_pair * bd_share)))
    return bd, per_pair - bd


def signopt_probes(pair_budget: int, n_probes: int) -> int:
    """Probes per Sign-OPT step that leave room for at least two steps (probes + check + ~7 bisections each)."""
    return max(2, min(n_probes, (pair_budget // 2) - 8))


def distance_labels(box: BlackBox | None, x: torch.Tensor, y_true: torch.Tensor, num_classes: int,
                    cfg: DB3KDConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distances and soft labels for ``x`` under ``cfg.measure``; all teacher queries go through ``box``.

    Returns ``distance (N, C)``, ``soft (N, C)``, ``teacher_label (N,)`` (the true label for SD,
    which asks nothing) and ``queries (N,)`` per sample, label query included.
    """
    n = x.shape[0]
    if cfg.measure == "sd":
        res = boundary.sample_distance(x, x, y_true, num_classes, cfg.sd_samples, seed=seed)
        y0 = y_true
        queries = res.queries
    else:
        if box is None or box.access != "decision":
            raise InvalidQueryError("DB3KD's BD and MBD need a decision box (BlackBox(model, access='decision')).")
        bd_q, so_q = pair_budgets(cfg.queries, num_classes, cfg.measure, cfg.bd_share)
        with box.phase("teacher labels"):
            y0 = torch.cat([box(x[i:i + 8192]) for i in range(0, n, 8192)])
        with box.phase(f"{cfg.measure} search"):
            if cfg.measure == "bd":
                res = boundary.boundary_distance(box, x, y0, x, y0, num_classes, cfg.n_directions,
                                                 queries_per_pair=bd_q, rtol=cfg.rtol, seed=seed)
            else:
                res = boundary.minimal_boundary_distance(box, x, y0, x, y0, num_classes, cfg.n_directions,
                                                         bd_queries_per_pair=bd_q, signopt_queries_per_pair=so_q,
                                                         n_probes=signopt_probes(so_q, cfg.n_probes), rtol=cfg.rtol,
                                                         seed=seed)
        queries = res.queries + 1
    soft = boundary.distance_soft_labels(res.distance, y0, cfg.tau)
    return {"distance": res.distance.float(), "soft": soft, "teacher_label": y0, "queries": queries}


@register_method
class DB3KD(DistillationMethod):
    """DB3KD: soft labels from distances to a decision-only teacher's boundaries (SD, BD or MBD), then KD."""

    name = "db3kd"
    access = "decision"
    data_access = "labeled"
    summary = "DB3KD: decision-based black-box KD with data (boundary distances -> soft labels)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--measure``, ``--queries``, ``--tau``, ``--alpha``, ``--train-size``, ``--soft-size``, ``--epochs``, ``--lr``."""
        parser.add_argument("--measure", choices=MEASURES, help="robustness measure: sd | bd | mbd")
        parser.add_argument("--queries", type=int, help="query budget per soft-labelled sample (label query included)")
        parser.add_argument("--tau", type=float, help="soft-label temperature (default 20)")
        parser.add_argument("--alpha", type=float, help="weight of CE on the true label (default 0.5)")
        parser.add_argument("--train-size", dest="train_size", type=int, help="training samples used")
        parser.add_argument("--soft-size", dest="soft_size", type=int, help="how many of them get soft labels")
        parser.add_argument("--epochs", type=int, help="training epochs (default: the profile's)")
        parser.add_argument("--lr", type=float, help="learning rate")

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
        """Soft-label ``soft_size`` training images through the decision box, then train the student."""
        if data.train is None or data.val is None:
            raise ValueError("DB3KD needs labeled training data (data_access='labeled')")
        cfg = DB3KDConfig.for_profile(ctx.profile, **self.options)
        if cfg.measure != "sd" and (box is None or box.access != "decision"):
            raise InvalidQueryError("DB3KD is decision-based: give it BlackBox(model, access='decision').")
        train = data.train
        gen = torch.Generator().manual_seed(ctx.seed)
        n_train = len(train) if cfg.train_size is None else min(cfg.train_size, len(train))
        order = torch.randperm(len(train), generator=gen)[:n_train].to(train.x.device)
        x, y = train.x[order], train.y[order]
        n_soft = n_train if cfg.soft_size is None else min(cfg.soft_size, n_train)
        c = ctx.info.num_classes
        labels = distance_labels(box, x[:n_soft], y[:n_soft], c, cfg, seed=ctx.seed)
        soft = torch.zeros(n_train, c, device=x.device)
        soft[:n_soft] = labels["soft"].to(x.device)
        has_soft = torch.zeros(n_train, dtype=torch.bool, device=x.device)
        has_soft[:n_soft] = True
        student = ctx.new_student()
        res = fit(student, x, (soft, y, has_soft), DistanceLabelLoss(cfg.tau, cfg.alpha), val=data.val,
                  epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, device=ctx.device, seed=ctx.seed,
                  progress=ctx.progress, desc=f"DB3KD ({cfg.measure})")
        q = labels["queries"].float()
        own = F.one_hot(labels["teacher_label"].long(), c).bool()
        reached = torch.isfinite(labels["distance"]) & ~own
        extras = {
            "config": asdict(cfg), "measure": cfg.measure, "best_epoch": res.best_epoch,
            "soft_labelled": n_soft, "train_size": n_train,
            "queries_per_sample": round(float(q.mean()), 2) if n_soft else 0.0,
            "max_queries_per_sample": int(q.max()) if n_soft else 0,
            "budget_per_sample": cfg.queries if cfg.measure != "sd" else 0,
            "reached_classes_per_sample": round(float(reached.sum(1).float().mean()), 2) if n_soft else 0.0,
        }
        artifacts = {"x": x[:n_soft], "y": y[:n_soft], "index": order[:n_soft], **labels}
        return DistillOutput(student, n_train, res.best_val_acc, history=res.history, extras=extras,
                             artifacts=artifacts)
