"""What each method's run will do, counted from its config alone: the cost model's input.

One function per method, registered for its name with :func:`plans`; :meth:`DistillationMethod.work
<labkit.methods.base.DistillationMethod.work>` finds it. Each returns a :class:`~labkit.core.work.WorkPlan`: the
method's own steps (box calls, crafting steps, generator steps, boundary searches) and the reported student's
training, each at its batch size. :mod:`labkit.studies.cost` times each kind of step once per device and adds them
up. Where the real count depends on the teacher's answers (rejection sampling, a search that stops early), the plan
counts what the config implies and says so in a note; ``docs/cost.md`` compares the sums with measured runs.
"""
from __future__ import annotations

from typing import Any

from labkit.core.data import VAL_SIZE, DatasetInfo
from labkit.core.work import Work, WorkPlan, box_work, fit_work, params
from labkit.methods.base import WORK_PLANS, WorkPlanFn, student_work
from labkit.methods.db3kd import DISTANCE_FIELDS, LABEL_PHASE, SOFT_LABELS, TRUE_LABELS, DB3KDConfig, search_phase
from labkit.methods.fsbbt import FSBBTConfig
from labkit.methods.ideal import PHASE as IDEAL_PHASE
from labkit.methods.ideal import REQUERY_PHASE, ROUND_SAMPLES_PHASE, IDEALConfig
from labkit.methods.kd import KDConfig, StudentConfig
from labkit.methods.kd_edge import EdgeKDConfig
from labkit.methods.mekd import STREAM_PHASE, MEKDConfig
from labkit.methods.noise_kd import PHASE as NOISE_PHASE
from labkit.methods.noise_kd import NoiseKDConfig
from labkit.methods.zsdb3kd import ZSDB3KDConfig
from labkit.methods.zskd import (
    AUTHORS_AUGMENTATION,
    AUTHORS_AUGMENTATION_PHASE,
    COPIES,
    COPY_PHASE,
    ZSKD_COPIES_PER_IMAGE,
    ZSKDConfig,
)
from labkit.synthesis.pseudo_samples import checkpoint_iterations

#: the settings that shape one ZSDB3KD search-and-step iteration (the cost model's calibration runs one with them)
SEARCH_FIELDS = ("n_directions", "warm_directions", "signopt_queries", "n_probes", "step_size", "max_halvings",
                 "warm_start", "signopt_line_search", "signopt_stall_reset", "signopt_tol_beta_divisor")


def plans(name: str) -> Any:
    """Register a method's work plan under its registered name."""
    def register(fn: WorkPlanFn) -> WorkPlanFn:
        WORK_PLANS[name] = fn
        return fn
    return register


@plans("student")
def _student(method: Any, cfg: StudentConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """No method work; the student trains on every training image, selected on the validation split."""
    return WorkPlan((), student_work(cfg, train_rows, VAL_SIZE.get(info.name, 0), student_arch))


@plans("kd")
def _kd(method: Any, cfg: KDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """One box call for every training image, then the student on all of them."""
    return WorkPlan((box_work("label transfer set", train_rows),),
                    student_work(cfg, train_rows, VAL_SIZE.get(info.name, 0), student_arch))


@plans("kd-edge")
def _kd_edge(method: Any, cfg: EdgeKDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """One box call for the edge subset; the student on its kept part, selected on the rest."""
    edge = max(1, int(round(train_rows * cfg.edge_fraction)))
    hold = max(1, int(round(edge * cfg.holdout_fraction)))
    return WorkPlan((box_work("label edge subset", edge),), student_work(cfg, edge - hold, hold, student_arch))


@plans("noise-kd")
def _noise_kd(method: Any, cfg: NoiseKDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """``draws`` noise images in box calls of ``init_batch``; the student on a class-balanced draw of them."""
    c = info.num_classes
    hold = max(1, int(round(cfg.per_class * cfg.holdout_fraction / 2)))
    rows = min(cfg.draws, cfg.per_class * c)
    return WorkPlan((Work(NOISE_PHASE, "noise", cfg.draws / cfg.init_batch, cfg.init_batch, params(family=cfg.noise)),
                     box_work(NOISE_PHASE, cfg.draws, cfg.init_batch,
                              note="at least draws; more where a class is rare under this noise")),
                    student_work(cfg, rows, hold * c, student_arch))


@plans("fsbbt")
def _fsbbt(method: Any, cfg: FSBBTConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """The few-shot call, the MixUp and CVAE images' calls, the CVAE's training; the student on all of them."""
    n_mix = cfg.nomixup if cfg.uses("mixup") else 0  # the most MixUp keeps (it drops λ near 0 and 1)
    n_cvae = 0 if not cfg.uses("cvae") else cfg.cvae_count if cfg.cvae_count is not None else \
        max(cfg.nomixup - n_mix, 0)
    own = [box_work("few-shot", cfg.shots)]
    if n_mix:
        own.append(box_work("mixup", n_mix))
    if cfg.uses("cvae"):
        own.append(Work("cvae", "cvae", cfg.cvae_epochs * -(-cfg.shots // cfg.cvae_batch_size),
                           cfg.cvae_batch_size))
        if n_cvae:
            own.append(box_work("cvae", n_cvae))
    total = cfg.shots + n_mix + n_cvae
    hold = max(1, int(round(total * cfg.holdout_fraction)))
    return WorkPlan(tuple(own), student_work(cfg, total - hold, hold, student_arch),
                    ("the student's augmentation and online MixUp are not counted apart",))


@plans("zskd")
def _zskd(method: Any, cfg: ZSKDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """``impressions × iterations`` white-box crafting steps in batches of ``craft_batch``, one label call, the
    copies' call; the student (with the authors' augmentation: every batch replaced by its relabelled copies)."""
    n = cfg.impressions
    batch = min(cfg.craft_batch, n)
    own = [Work("craft impressions", "craft", n * cfg.iterations / batch, batch,
                   params(parametrisation=cfg.parametrisation)),
              box_work("label impressions", n)]
    hold = max(1, int(round(n * cfg.holdout_fraction)))
    rows, selection = n - hold, hold
    if cfg.uses(COPIES):
        own.append(box_work(COPY_PHASE, n * cfg.copies))
        rows, selection = rows * (1 + cfg.copies), hold * (1 + cfg.copies)
    if not cfg.uses(AUTHORS_AUGMENTATION):
        return WorkPlan(tuple(own), student_work(cfg, rows, selection, student_arch))
    per_image = cfg.augmentations_per_step or ZSKD_COPIES_PER_IMAGE
    steps = cfg.epochs * -(-rows // cfg.batch_size)
    big = cfg.batch_size * per_image
    student = (Work("student", "train", steps, big, params(arch=student_arch)),
               Work(AUTHORS_AUGMENTATION_PHASE, "augment", steps, cfg.batch_size,
                    params(per_step=cfg.augmentations_per_step or 0)),
               Work(AUTHORS_AUGMENTATION_PHASE, "box", steps, big),
               Work("student", "eval", cfg.epochs, selection, params(arch=student_arch)))
    return WorkPlan(tuple(own), student)


@plans("mekd")
def _mekd(method: Any, cfg: MEKDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """The GAN's steps (one box call each), G's answered samples, and the student's alignment steps through G
    (with the stream, a fresh G(z) batch and one box call at every step)."""
    edge = max(1, int(round(train_rows * cfg.edge_fraction)))
    gan = params(g_width=cfg.g_width, d_width=cfg.d_width, layout=cfg.gan_layout, response=method.response)
    g_only = params(g_width=cfg.g_width, layout=cfg.gan_layout)
    steps = cfg.gan_epochs * -(-edge // cfg.gan_batch)
    own = [Work("deprivatisation: G(z)", "gan", steps, cfg.gan_batch, gan)]
    if cfg.inverse_check:
        own += [Work("inverse check: G(z)", "g-forward", 1, cfg.inverse_check, g_only),
                   box_work("inverse check: G(z)", cfg.inverse_check)]
    if cfg.uses("edge-images"):
        answered, hold, rows = cfg.transfer_size, max(1, int(round(edge * cfg.edge_holdout))), cfg.transfer_size
        rows += edge - hold
        own.append(box_work("distillation: edge images", edge))
    elif cfg.stream:
        answered, hold, rows = cfg.holdout_size, cfg.holdout_size, cfg.transfer_size
    else:
        answered, hold, rows = cfg.transfer_size + cfg.holdout_size, cfg.holdout_size, cfg.transfer_size
    own += [Work("distillation: G(z)", "g-forward", 1, answered, g_only),
               box_work("distillation: G(z)", answered)]
    align = params(arch=student_arch, g_width=cfg.g_width, layout=cfg.gan_layout, response=method.response)
    per_step: tuple[Work, ...] = ()
    if cfg.stream:
        per_step = (Work(STREAM_PHASE, "g-forward", 1, cfg.batch_size, g_only),
                    Work(STREAM_PHASE, "box", 1, cfg.batch_size))
    else:
        own.append(Work("student: G(r_T)", "g-forward", 1, rows, g_only))
    fit = student_work(cfg, rows, hold, student_arch, per_step)
    fit = tuple(Work(w.phase, "align", w.steps, w.batch, align) if w.kind == "train" else w for w in fit)
    return WorkPlan(tuple(own), fit)


@plans("ideal")
def _ideal(method: Any, cfg: IDEALConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """Every round: ``g_steps`` generator steps on ``per_round`` latents, its box call(s), and one pass of the guide
    over every image labelled so far; then the fresh student on them all, less the holdout."""
    rounds = cfg.rounds
    per, extra = cfg.per_round, cfg.extra_per_round
    g = params(nz=cfg.nz, g_width=cfg.g_width, arch=student_arch, fused_upsample=cfg.fused_upsample,
               g_precision=cfg.g_precision)
    guide = params(arch=student_arch)
    own: list[Work] = [Work("generator steps", "ideal-g", rounds * cfg.g_steps, per, g)]
    guide_steps = 0
    for r in range(1, rounds + 1):
        asked = per * r if cfg.requery_pool else per
        own.append(box_work(REQUERY_PHASE if cfg.requery_pool else IDEAL_PHASE, asked))
        if extra:
            own.append(box_work(ROUND_SAMPLES_PHASE, extra))
        labelled = r * (per + extra)
        guide_steps += -(-labelled // cfg.guide_batch)
    own.append(Work("guide passes", "train", guide_steps, cfg.guide_batch, guide))
    pool = rounds * (per + extra)
    hold = rounds * max(1, int(round((per + extra) * cfg.holdout_fraction)))
    return WorkPlan(tuple(own), student_work(cfg, pool - hold, hold, student_arch))


@plans("db3kd")
def _db3kd(method: Any, cfg: DB3KDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """One label call and the boundary distances of the soft-labelled images; the student on every row."""
    n_train = train_rows if cfg.train_size is None else min(cfg.train_size, train_rows)
    n_soft = 0 if not cfg.uses(SOFT_LABELS) else n_train if cfg.soft_size is None else min(cfg.soft_size, n_train)
    rows = n_train if cfg.uses(TRUE_LABELS) else n_soft
    own: list[Work] = []
    if n_soft:
        if cfg.measure != "sd":
            own.append(box_work(LABEL_PHASE, n_soft))
        shape = {k: v for k, v in cfg.as_dict().items() if k in DISTANCE_FIELDS}
        own.append(Work(search_phase(cfg.measure), "distance", 1, n_soft, params(kind="db3kd", **shape)))
    return WorkPlan(tuple(own), student_work(cfg, rows, VAL_SIZE.get(info.name, 0), student_arch))


@plans("zsdb3kd")
def _zsdb3kd(method: Any, cfg: ZSDB3KDConfig, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
    """Rejection sampling (the least the config draws), ``iterations`` search-and-step iterations for every
    pseudo-sample, their soft labels; the student, and after it the accuracy curve's students."""
    c = info.num_classes
    n = cfg.per_class * c
    draws = max(cfg.min_init_draws if cfg.uses("noise-bank") else 0, n, cfg.init_batch)
    search = params(**{k: v for k, v in cfg.as_dict().items() if k in SEARCH_FIELDS})
    own = [Work("initial noise", "noise", draws / cfg.init_batch, cfg.init_batch, params(family=cfg.noise)),
           box_work("initial noise", draws, cfg.init_batch,
                    note="the least the config draws; a class the noise rarely reaches costs more"),
           Work("nearest boundary", "search", 1, n, search + (("first", True),)),
           Work("nearest boundary", "search", max(0, cfg.iterations - 1), n, search + (("first", False),)),
           Work("soft labels", "distance", 1, n, params(kind="pseudo-samples", label_directions=cfg.label_directions))]
    hold = max(1, int(round(n * cfg.holdout_fraction)))
    k = n - hold
    rows = k * (1 + (cfg.iterations if cfg.uses("pseudo-sample-paths") else 0))
    if cfg.uses("noise-bank"):
        per_hold = max(1, int(round(cfg.bank_per_class * cfg.holdout_fraction / 2)))
        rows, hold = rows * cfg.pseudo_repeat + cfg.bank_per_class * c, hold + per_hold * c
    student = student_work(cfg, rows, hold, student_arch)
    curve: list[Work] = []
    # each curve student: its images' soft labels and a student like the final one
    for _ in checkpoint_iterations(cfg.iterations, cfg.curve_points):
        curve.append(Work("accuracy curve", "distance", 1, n,
                          params(kind="pseudo-samples", label_directions=cfg.label_directions)))
        curve += fit_work("accuracy curve", rows, cfg.epochs, cfg.batch_size, student_arch, hold)
    return WorkPlan(tuple(own), student + tuple(curve),
                    ("ZSDB3KD's search is timed per iteration on the real teacher at two sample counts; its "
                     "Sign-OPT stops early where a ray's budget or step runs out, so the count is its most",))
