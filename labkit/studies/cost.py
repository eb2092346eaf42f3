"""The cost model: how long a run will take on this device, before anything runs.

A method counts its work from its config (:meth:`~labkit.methods.base.DistillationMethod.work`, a
:class:`~labkit.core.work.WorkPlan`). Each kind of step (:data:`~labkit.core.work.WORK_KINDS`) is timed here once,
on the real models at the run's sizes (:class:`Calibrator`): a step at two images gives its fixed cost, a step at
the run's batch (or as near as a tenth of a second allows) its cost per image, so that one step of ``b`` images costs
``overhead + b · per_image``. The times are cached per device and thread count in the lab's user folder
(:func:`cache_path`), so a device is calibrated once (about a second per new kind). :func:`estimate_run` adds the
steps up per phase; ``run_method(..., dry_run=True)`` and ``python -m labkit run NAME --estimate`` return it.

The same calibration counts every kind's FLOPs per image and eager ops per step, so a device the lab has never seen
can be estimated from two published figures (:class:`AssumedDevice`): its sustained FLOP/s and its cost per op.
:data:`T4` holds them for the free Colab GPU, with their source; ``docs/cost.md`` has the derivation and the checks.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from labkit.core.blackbox import BlackBox, bf16_available
from labkit.core.data import TOY_SIZES, DatasetInfo, canonical_name, dataset_info, load_dataset
from labkit.core.device import cpu_summary, pick_device
from labkit.core.errors import LabkitError
from labkit.core.models import model_for
from labkit.core.paths import lab_home
from labkit.core.profiles import PROFILES, Profile, get_profile
from labkit.core.teachers import default_student_arch, default_teacher_arch, get_teacher
from labkit.core.train import adam
from labkit.core.work import Work, WorkPlan
from labkit.methods.base import get_method
from labkit.studies.speed import MacCounter
from labkit.synthesis.alignment import GenerativeAlignmentLoss
from labkit.synthesis.cvae import build_cvae, cvae_loss
from labkit.synthesis.generators import LatentGenerator, build_discriminator, build_generator, freeze
from labkit.synthesis.ideal_rounds import crop_and_flip, generator_loss
from labkit.synthesis.impressions import impression_loss
from labkit.synthesis.noise import noise_images

CACHE_VERSION = 2
#: training images of the lab's image data sets (the validation split already carved out)
TRAIN_SIZE = {"fashion-mnist": 55_000, "mnist": 55_000, "cifar10": 45_000}
#: one calibration step is timed at a batch whose step takes about this long (or the run's batch, if smaller)
STEP_TARGET_S = 0.08


class RunTooLong(LabkitError, RuntimeError):
    """A run's estimate is over the time the caller allows (a notebook's ``MAX_MINUTES``)."""


# ------------------------------------------------------------------------------------------------ assumed devices
@dataclass(frozen=True)
class AssumedDevice:
    """A device the lab estimates without running on it: its sustained FLOP/s and the cost of one eager op."""

    name: str
    flops_per_s: float
    op_s: float
    source: str

    def step_seconds(self, flops: float, ops: float) -> float:
        """One step of ``flops`` FLOPs in ``ops`` eager ops."""
        return ops * self.op_s + flops / self.flops_per_s


#: ResNet-50 v1.5's forward: 4.1 G multiply-adds per 224×224 image, 8.2 GFLOP; about 175 eager ops (53 convolutions,
#: 53 batch norms, 49 ReLUs, 16 adds, 2 pools, the FC layer)
RESNET50_FLOP, RESNET50_OPS = 8.2e9, 175
#: NVIDIA's published PyTorch inference table for a T4, FP32 (DeepLearningExamples, ResNet-50 v1.5 README)
T4_IMAGES_PER_S_BATCH64, T4_LATENCY_BATCH1_S = 428.0, 10.7e-3
T4 = AssumedDevice(
    name="NVIDIA T4 (assumed, fp32)",
    flops_per_s=T4_IMAGES_PER_S_BATCH64 * RESNET50_FLOP,
    op_s=(T4_LATENCY_BATCH1_S - RESNET50_FLOP / (T4_IMAGES_PER_S_BATCH64 * RESNET50_FLOP)) / RESNET50_OPS,
    source="NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, 'Inference "
           "performance: NVIDIA T4', FP32: 428 img/s at batch 64 (sustained FLOP/s) and 10.7 ms at batch 1 (the "
           "rest of that latency spread over ResNet-50's eager ops)")


# ------------------------------------------------------------------------------------------------ counting
class OpCounter(TorchDispatchMode):
    """Counts the aten ops a block of code dispatches (each is at least one kernel launch on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


def module_flops(modules: list[nn.Module], step: Callable[[], object]) -> float:
    """FLOPs of one call of ``step`` in ``modules``, counted as the speed benchmark counts them
    (:class:`~labkit.studies.speed.MacCounter`, :data:`~labkit.studies.speed.FLOP_CONVENTION`)."""
    with MacCounter(modules) as counter:
        step()
    return float(counter.flops)


# ------------------------------------------------------------------------------------------------ step builders
@dataclass
class Step:
    """One calibration step: the callable, the networks whose FLOPs it counts, and its images."""

    run: Callable[[], object]
    modules: list[nn.Module]
    images: int
    box: BlackBox | None = None  # a whole-algorithm step's box (its calls and queries are counted)


@dataclass
class CalibrationContext:
    """What the builders build from: the data set, the architectures, the device and a seed."""

    info: DatasetInfo
    teacher_arch: str
    device: torch.device
    seed: int = 0

    def net(self, arch: str) -> nn.Module:
        torch.manual_seed(self.seed)
        return model_for(arch, self.info).to(self.device)

    def images(self, n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand((n, *self.info.image_shape), generator=g).to(self.device)

    def box(self, access: str = "score", real: bool = False) -> tuple[BlackBox, nn.Module]:
        """A box over a randomly initialised teacher (its speed is the trained one's), or over the lab's trained
        teacher (``real``: a search's length depends on where its boundaries are)."""
        teacher = get_teacher(self.info.name, self.teacher_arch, device=self.device, progress=False).model if real \
            else self.net(self.teacher_arch).eval()
        return BlackBox(teacher, access=access, input_shape=tuple(self.info.image_shape),
                        num_classes=self.info.num_classes, device=self.device), teacher

    def real_images(self, n: int) -> torch.Tensor:
        """``n`` class-balanced training images (a search needs every class, as the runs have)."""
        return load_dataset(self.info.name, "train", device=self.device, limit=n, seed=self.seed).x


def _adam(params: Any, **kw: Any) -> torch.optim.Adam:
    """Adam as the lab's loops build it (:func:`labkit.core.train.adam`: fused where the device has it)."""
    return adam(params, **kw)


def _box_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    box, teacher = ctx.box("score")
    x = ctx.images(b)
    return Step(lambda: box(x), [teacher], b)


def _craft_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    box, teacher = ctx.box("white")
    y = torch.softmax(torch.randn(b, ctx.info.num_classes), 1).to(ctx.device)
    param = ctx.images(b).clone().requires_grad_(True)
    opt = _adam([param], lr=0.01)

    def run() -> None:
        loss = impression_loss(box(param), y, 20.0)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            param.clamp_(0.0, 1.0)
    return Step(run, [teacher], b)


def _train_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    model = ctx.net(p["arch"]).train()
    opt = _adam(model.parameters(), lr=1e-3)
    x = ctx.images(b)
    soft = torch.softmax(torch.randn(b, ctx.info.num_classes), 1).to(ctx.device)

    def run() -> None:
        loss = F.kl_div(F.log_softmax(model(x).float() / 4.0, 1), soft, reduction="batchmean")
        if not bool(torch.isfinite(loss)):  # fit's per-step host read
            raise FloatingPointError("calibration loss is not finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return Step(run, [model], b)


def _eval_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    model = ctx.net(p["arch"]).eval()
    x = ctx.images(b)

    def run() -> None:
        with torch.no_grad():
            model(x).argmax(1).sum().item()
    return Step(run, [model], b)


def _gan_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    info, dev = ctx.info, ctx.device
    G = build_generator(info, p["g_width"], p["layout"]).to(dev)
    D = build_discriminator(info, p["d_width"], p["layout"]).to(dev)
    opt_g, opt_d = _adam(G.parameters(), lr=2e-4), _adam(D.parameters(), lr=2e-4)
    box, teacher = ctx.box("score" if p.get("response", "soft") == "soft" else "decision")
    real = ctx.images(b)

    def run() -> None:
        z = torch.randn(b, info.num_classes, device=dev)
        fake = G(z)
        box(fake.detach())
        d_real, _ = D(real)
        d_fake, _ = D(fake.detach())
        d_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_fake, _ = D(fake)
        g_loss = F.binary_cross_entropy_with_logits(g_fake, torch.ones_like(g_fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        float(g_loss.detach())
    return Step(run, [G, D, teacher], b)


def _g_forward_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    G = freeze(build_generator(ctx.info, p["g_width"], p["layout"]).to(ctx.device))
    z = torch.randn(b, ctx.info.num_classes, device=ctx.device)

    def run() -> None:
        with torch.no_grad():
            G(z)
    return Step(run, [G], b)


def _align_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    info = ctx.info
    G = build_generator(info, p["g_width"], p["layout"]).to(ctx.device)
    loss_fn = GenerativeAlignmentLoss(G, info.num_classes, p.get("response", "soft"))
    model = ctx.net(p["arch"]).train()
    opt = _adam(model.parameters(), lr=1e-3)
    x = ctx.images(b)
    answers = torch.softmax(torch.randn(b, info.num_classes), 1).to(ctx.device) if p.get("response", "soft") == \
        "soft" else torch.randint(info.num_classes, (b,)).to(ctx.device)
    images = loss_fn.teacher_images(answers)

    def run() -> None:
        loss = loss_fn(model(x), answers, images)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError("calibration loss is not finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return Step(run, [model, G], b)


def _ideal_g_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    info, dev = ctx.info, ctx.device
    shape = tuple(info.image_shape)
    G = LatentGenerator(p["nz"], shape, p["g_width"], p.get("fused_upsample", False)).to(dev)  # type: ignore[arg-type]
    G = G.to(memory_format=torch.channels_last)
    guide = ctx.net(p["arch"]).eval().to(memory_format=torch.channels_last)
    for q in guide.parameters():
        q.requires_grad_(False)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))  # the rounds' plain Adam (ideal_rounds)
    gen = torch.Generator().manual_seed(ctx.seed)
    z = torch.randn(b, p["nz"], generator=gen).to(dev)
    targets = (torch.arange(b) % info.num_classes).to(dev)
    choice = p.get("g_precision", "run")
    bf16 = choice == "bf16" or (choice == "auto" and bf16_available(dev))

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            images = G(z)
            loss = generator_loss(guide(crop_and_flip(images, gen)).float(), targets, 5.0, "authors")
        loss.backward()
        opt.step()
    return Step(run, [G, guide], b)


def _cvae_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    model = build_cvae(tuple(ctx.info.image_shape), ctx.info.num_classes, 2).to(ctx.device).train()
    opt = _adam(model.parameters(), lr=3e-3)
    x = ctx.images(b)
    labels = torch.randint(ctx.info.num_classes, (b,)).to(ctx.device)

    def run() -> None:
        recon, mu, logvar = model(x, labels)
        loss = cvae_loss(recon, x, mu, logvar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    return Step(run, [model], b)


def _noise_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    """Drawing ``b`` noise images of one family (on the CPU, as the rejection sampler draws them)."""
    gen = torch.Generator().manual_seed(ctx.seed)
    return Step(lambda: noise_images(b, ctx.info.image_shape, gen, ctx.device, p["family"]), [], b)


def _augment_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    """ZSKD's authors' augmentations of ``b`` impressions, as the student's batch hook builds them."""
    from labkit.synthesis.augment import ZSKD_COPIES_PER_IMAGE, zskd_authors_augmentations, zskd_authors_picked_copies

    x, per_step = ctx.images(b), int(p.get("per_step", 0))
    gen = torch.Generator().manual_seed(ctx.seed)
    if 0 < per_step < ZSKD_COPIES_PER_IMAGE:
        return Step(lambda: zskd_authors_picked_copies(
            x, torch.rand(b, ZSKD_COPIES_PER_IMAGE, generator=gen).argsort(dim=1)[:, :per_step]), [], b)
    return Step(lambda: zskd_authors_augmentations(x), [], b)


def _search_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    """One ZSDB3KD search-and-step iteration for ``b`` noise images (their labels the teacher's)."""
    from labkit.methods.work_plans import SEARCH_FIELDS
    from labkit.methods.zsdb3kd import ZSDB3KDConfig
    from labkit.synthesis.pseudo_samples import label_preserving_step, search_nearest_boundary

    box, teacher = ctx.box("decision", real=True)
    cfg = ZSDB3KDConfig.for_profile("smoke", **{k: v for k, v in p.items() if k in SEARCH_FIELDS})
    settings = cfg.pseudo_sample_settings()
    x = ctx.real_images(b)
    y = box(x)
    previous = None
    if not p.get("first", True) and settings.warm_start:
        _, previous = search_nearest_boundary(box, x, y, settings, None, seed=ctx.seed)

    def run() -> None:
        _, theta = search_nearest_boundary(box, x, y, settings, previous, seed=ctx.seed + 1)
        label_preserving_step(box, x, y, theta, settings.step_size, settings.max_halvings)
    return Step(run, [teacher], b, box)


def _distance_step(ctx: CalibrationContext, p: dict[str, Any], b: int) -> Step:
    """Boundary distances of ``b`` images: DB3KD's measure, or ZSDB3KD's pseudo-sample soft labels."""
    box, teacher = ctx.box("decision", real=True)
    x = ctx.real_images(b)
    y = box(x)
    if p["kind"] == "pseudo-samples":
        from labkit.synthesis.pseudo_samples import pseudo_sample_soft_labels

        def run() -> None:
            pseudo_sample_soft_labels(box, x, y, ctx.info.num_classes, p["label_directions"], 20.0, ctx.seed)
        return Step(run, [teacher], b, box)
    from labkit.methods.db3kd import DISTANCE_FIELDS, DB3KDConfig, distance_labels

    cfg = DB3KDConfig.for_profile("smoke", **{k: v for k, v in p.items() if k in DISTANCE_FIELDS})
    return Step(lambda: distance_labels(box, x, y, ctx.info.num_classes, cfg, seed=ctx.seed), [teacher], b, box)


BUILDERS: dict[str, Callable[[CalibrationContext, dict[str, Any], int], Step]] = {
    "box": _box_step, "craft": _craft_step, "train": _train_step, "eval": _eval_step, "gan": _gan_step,
    "g-forward": _g_forward_step, "align": _align_step, "ideal-g": _ideal_g_step, "cvae": _cvae_step,
    "search": _search_step, "distance": _distance_step, "noise": _noise_step,
    "augment": _augment_step}
#: kinds whose step is a whole algorithm over ``batch`` samples: timed at two small sample counts, fitted linearly
SAMPLE_KINDS = {"search": (10, 100), "distance": (20, 100)}


# ------------------------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class UnitCost:
    """One kind of step on one device: ``overhead_s + batch · per_image_s`` seconds; FLOPs per image and ops per
    step (for :class:`AssumedDevice` estimates); the batch it was timed at and how long calibrating it took."""

    overhead_s: float
    per_image_s: float
    flops_per_image: float
    ops_per_step: float
    timed_at: int
    calibration_s: float
    #: whole-algorithm kinds: box calls at ``timed_at`` samples and their growth per e-fold of samples, queries per
    #: sample (then ``overhead_s`` is per call and ``per_image_s`` per query)
    calls_at: float = 0.0
    calls_per_efold: float = 0.0
    queries_per_sample: float = 0.0
    #: DB3KD's nearest-first ray choice: seconds per (sample, pool image) distance, the pool being the samples
    #: themselves, so ``batch²`` pairs (negligible at the calibration's counts, minutes at 55,000 images)
    per_pair_s: float = 0.0

    def calls(self, batch: int) -> float:
        """A whole-algorithm step's box calls for ``batch`` samples: logarithmic in the samples through the two timed
        counts (every call serves all rays still running; more rays, a longer tail of the slowest)."""
        return max(1.0, self.calls_at + self.calls_per_efold * math.log(max(batch, 1) / self.timed_at))

    def seconds(self, batch: int) -> float:
        """One step of ``batch`` images (a whole-algorithm kind: its calls and its queries)."""
        if self.queries_per_sample:
            return (self.overhead_s * self.calls(batch) + self.per_image_s * self.queries_per_sample * batch
                    + self.per_pair_s * float(batch) ** 2)
        return self.overhead_s + batch * self.per_image_s


def _best_time(run: Callable[[], object], min_s: float = 0.08, repeats: int = 5, warmup: int = 3) -> float:
    """Best of ``repeats`` mean step times (each repeat at least ``min_s``), after ``warmup`` calls (the first ones
    build kernels and buffers)."""
    run()  # the first call builds kernels and buffers
    t0 = time.perf_counter()
    run()
    second = time.perf_counter() - t0
    for _ in range(warmup - 2 if second < 0.05 else 0):
        run()
    k = max(1, int(min_s / max(second, 1e-6)))
    best = second
    for _ in range(repeats if second < 0.5 else 1):
        t0 = time.perf_counter()
        for _ in range(k):
            run()
        best = min(best, (time.perf_counter() - t0) / k)
    return best


def device_label(device: torch.device, threads: int | None = None) -> str:
    """How the estimate names the device: 'this CPU (2 threads)' or 'this GPU (NVIDIA T4)'."""
    if device.type == "cuda":
        return f"this GPU ({torch.cuda.get_device_name(device)})"
    n = threads or torch.get_num_threads()
    return f"this CPU ({n} thread{'' if n == 1 else 's'})"


def device_slug(device: torch.device) -> str:
    """The cache's name for a device: its model, thread count and torch version."""
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_summary()
    raw = f"{device.type}-{what}-t{torch.get_num_threads()}-torch{torch.__version__}"
    return re.sub(r"[^A-Za-z0-9.]+", "-", raw).strip("-").lower()


def cache_path(device: torch.device) -> Path:
    """The calibration cache of ``device``: ``$LABKIT_COST_CACHE`` or ``cost/<device>.json`` in the user folder."""
    env = os.environ.get("LABKIT_COST_CACHE")
    folder = Path(env).expanduser() if env else lab_home() / "cost"
    return folder / f"{device_slug(device)}.json"


class Calibrator:
    """Times each kind of step once per device (cached in :func:`cache_path`) and prices a :class:`Work`."""

    def __init__(self, info: DatasetInfo, teacher_arch: str, device: torch.device | str | None = None, *,
                 cache: Path | None = None, refresh: bool = False, count_only: bool = False) -> None:
        self.device = torch.device(device) if device is not None else pick_device()
        self.ctx = CalibrationContext(info, teacher_arch, self.device)
        self.path = cache if cache is not None else cache_path(self.device)
        #: count FLOPs, ops and calls without timing (enough for an assumed device; nothing is cached)
        self.count_only = count_only
        self.units: dict[str, UnitCost] = {} if refresh or count_only else self._load()
        self.calibration_s = 0.0

    def _load(self) -> dict[str, UnitCost]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if data.get("version") != CACHE_VERSION:
            return {}
        try:
            return {k: UnitCost(**v) for k, v in data.get("units", {}).items()}
        except TypeError:  # a cache from another layout: calibrate again
            return {}

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "device": device_slug(self.device),
                                       "units": {k: asdict(v) for k, v in sorted(self.units.items())}}, indent=1))
            tmp.replace(self.path)
        except OSError:  # a read-only home: the estimate still stands, it is just not kept
            pass

    def key(self, work: Work) -> str:
        """The cache key of a work item's kind, models and calibration batch."""
        extra = ",".join(f"{k}={v}" for k, v in work.params)
        return f"{work.kind}|{self.ctx.info.name}|{self.ctx.teacher_arch}|{extra}|b{self.timing_batch(work)}"

    @staticmethod
    def timing_batch(work: Work) -> int:
        """The batch a kind is timed at: the run's, rounded down to a power of two above 2 (kept small for a
        whole-algorithm kind, which is timed at :data:`SAMPLE_KINDS` counts)."""
        if work.kind in SAMPLE_KINDS:
            return SAMPLE_KINDS[work.kind][1]
        return 2 ** max(1, int(math.log2(max(work.batch, 2))))

    def unit(self, work: Work) -> UnitCost:
        """The kind's cost model on this device, timed now if the cache does not have it."""
        key = self.key(work)
        if key not in self.units:
            start = time.perf_counter()
            cost = self._calibrate(work)
            self.units[key] = UnitCost(**{**asdict(cost), "calibration_s": round(time.perf_counter() - start, 3)})
            self.calibration_s += self.units[key].calibration_s
            if not self.count_only:
                self._save()
        return self.units[key]

    def _calibrate(self, work: Work) -> UnitCost:
        build, p = BUILDERS[work.kind], work.options
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if work.kind in SAMPLE_KINDS:
                return self._calibrate_algorithm(build, p, *SAMPLE_KINDS[work.kind])
            tiny = build(self.ctx, p, 2)
            t_tiny = self._time(tiny.run)
            with OpCounter() as counter:
                tiny.run()
            target = self.timing_batch(work)
            b = min(target, 64)
            step = build(self.ctx, p, b)
            t_b = self._time(step.run)
            if b < target and t_b < STEP_TARGET_S and not self.count_only:  # near the run's batch as time allows
                b = min(target, max(b, 2 ** int(math.log2(b * STEP_TARGET_S / max(t_b, 1e-6)))))
                step = build(self.ctx, p, b)
                t_b = self._time(step.run)
            flops = module_flops(step.modules, step.run) / b
            slope = max(t_b - t_tiny, 0.0) / max(b - 2, 1)
            return UnitCost(max(t_tiny - 2 * slope, 0.0), slope, flops, float(counter.ops), b, 0.0)

    def _time(self, run: Callable[[], object]) -> float:
        """Best step time (0 when only counting)."""
        return 0.0 if self.count_only else _best_time(run)

    def _calibrate_algorithm(self, build: Callable[[CalibrationContext, dict[str, Any], int], Step],
                             p: dict[str, Any], small: int, big: int) -> UnitCost:
        """A whole algorithm (a search, a labelling) run at two sample counts: its seconds split into a cost per box
        call and per query (two equations), its calls as a power law of the samples, its queries per sample."""
        runs = []
        for n in (small, big):
            step = build(self.ctx, p, n)
            assert step.box is not None
            q0, c0 = step.box.queries, step.box.calls
            with OpCounter() as counter:
                t0 = time.perf_counter()
                step.run()
                seconds = time.perf_counter() - t0
            runs.append((n, seconds, step.box.calls - c0, step.box.queries - q0, counter.ops, step))
        (n1, t1, c1, q1, ops1, _), (n2, t2, c2, q2, _, step2) = runs
        det = c1 * q2 - c2 * q1
        per_call = (t1 * q2 - t2 * q1) / det if det else 0.0
        per_query = (c1 * t2 - c2 * t1) / det if det else 0.0
        if per_call < 0 or per_query < 0:  # the two timings too close to separate: half each, at the larger count
            per_call, per_query = 0.5 * t2 / max(c2, 1), 0.5 * t2 / max(q2, 1)
        per_efold = max(c2 - c1, 0) / math.log(n2 / n1)
        box2, one = step2.box, self.ctx.real_images(1)
        assert box2 is not None
        flops = module_flops(step2.modules, lambda: box2(one))  # one teacher forward
        return UnitCost(per_call, per_query, flops * q2 / n2, ops1 / max(c1, 1), n2, 0.0,
                        calls_at=float(c2), calls_per_efold=per_efold, queries_per_sample=q2 / n2,
                        per_pair_s=self._pair_seconds(p) if p.get("kind") == "db3kd" else 0.0)

    def _pair_seconds(self, p: dict[str, Any], samples: int = 512, pool: int = 4096) -> float:
        """Seconds per (sample, pool image) pair of DB3KD's nearest-first candidates (:func:`class_candidates`)."""
        from labkit.synthesis.boundary import class_candidates

        x, pool_x = self.ctx.images(samples), self.ctx.images(pool)
        pool_y = torch.arange(pool, device=self.device) % self.ctx.info.num_classes
        k = int(p.get("n_directions", 20))
        return self._time(lambda: class_candidates(x, pool_x, pool_y, self.ctx.info.num_classes, k)) / (samples * pool)

    def seconds(self, work: Work, device: AssumedDevice | None = None) -> float:
        """The work's seconds on this device, or on an assumed one."""
        if work.steps == 0:
            return 0.0
        unit = self.unit(work)
        if device is not None:
            ops = unit.ops_per_step * (unit.calls(work.batch) if unit.queries_per_sample else 1.0)
            return work.steps * device.step_seconds(unit.flops_per_image * work.batch, ops)
        return work.steps * unit.seconds(work.batch)


# ------------------------------------------------------------------------------------------------ estimates
def describe_seconds(seconds: float, device: str) -> str:
    """'about 3.4 min on this CPU (2 threads)': seconds under 90, minutes under 90, hours beyond."""
    t = seconds
    amount = f"{t:.0f} s" if t < 90 else f"{t / 60:.1f} min" if t < 5400 else f"{t / 3600:.1f} h"
    return f"about {amount} on {device}"


@dataclass
class Estimate:
    """A run's predicted seconds, per phase, on one device (measured there, or assumed)."""

    method: str
    profile: str
    dataset: str
    device: str
    phases: dict[str, float]
    method_s: float
    student_s: float
    notes: list[str] = field(default_factory=list)
    calibration_s: float = 0.0
    assumed: str = ""

    @property
    def total_s(self) -> float:
        """The method and the student's training: what a record's ``wall_s`` measures."""
        return self.method_s + self.student_s

    @property
    def minutes(self) -> float:
        """The estimate in minutes (what ``MAX_MINUTES`` is compared with)."""
        return self.total_s / 60

    def describe(self) -> str:
        """'about 3.4 min on this CPU (2 threads)'."""
        return describe_seconds(self.total_s, self.device)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {**asdict(self), "total_s": round(self.total_s, 2)}

    def table(self) -> str:
        """The phases, one line each."""
        rows = [f"{self.method} ({self.profile} profile, {self.dataset}): {self.describe()}"]
        rows += [f"  {phase:<38} {s:9.1f} s" for phase, s in sorted(self.phases.items(), key=lambda kv: -kv[1])]
        rows += [f"  note: {n}" for n in self.notes]
        return "\n".join(rows)


def train_rows(dataset: str, profile: Profile, train_limit: int | None) -> int:
    """How many training images a with-data run is given."""
    full = TRAIN_SIZE.get(dataset, TOY_SIZES["train"])
    limit = train_limit if train_limit is not None else profile.train_limit
    return min(full, limit) if limit else full


def work_plan(name: str, *, dataset: str = "fashion-mnist", profile: str | Profile | None = None,
              student_arch: str | None = None, train_limit: int | None = None,
              **options: Any) -> tuple[WorkPlan, str]:
    """The run's :class:`~labkit.core.work.WorkPlan` (counted from its config) and the method's label."""
    cls = get_method(name)
    method = cls(**options)
    prof = get_profile(profile)
    dataset = canonical_name(dataset)
    info = dataset_info(dataset)
    cfg = method.config_class.for_profile(prof, dataset, **method.options)
    arch = student_arch or default_student_arch(dataset)
    return method.work(cfg, info, arch, train_rows(dataset, prof, train_limit)), method.label


def estimate_run(name: str, *, dataset: str = "fashion-mnist", profile: str | Profile | None = None,
                 device: torch.device | str | None = None, teacher_arch: str | None = None,
                 student_arch: str | None = None, train_limit: int | None = None,
                 assumed: AssumedDevice | None = None, calibrator: Calibrator | None = None,
                 **options: Any) -> Estimate:
    """Predict ``run_method(name, ...)``'s seconds per phase on this device (or on ``assumed``) without running it.

    Takes the same arguments as :func:`~labkit.studies.runner.run_method`; bad settings fail here as they would there.
    Calibrates the kinds of step the run needs that this device has not timed yet (about a second each, cached).
    """
    prof = get_profile(profile)
    dataset = canonical_name(dataset)
    plan, label = work_plan(name, dataset=dataset, profile=prof, student_arch=student_arch,
                            train_limit=train_limit, **options)
    cal = calibrator or Calibrator(dataset_info(dataset), teacher_arch or default_teacher_arch(dataset), device,
                                   count_only=assumed is not None)
    before = cal.calibration_s
    phases: dict[str, float] = {}
    parts = {"method": 0.0, "student": 0.0}
    for part, items in (("method", plan.method), ("student", plan.student)):
        for w in items:
            s = cal.seconds(w, assumed)
            phases[w.phase] = phases.get(w.phase, 0.0) + s
            parts[part] += s
    notes = list(plan.notes) + sorted({w.note for w in plan.all if w.note})
    where = assumed.name if assumed else device_label(cal.device)
    return Estimate(label, prof.name, dataset, where, {k: round(v, 2) for k, v in phases.items()},
                    round(parts["method"], 2), round(parts["student"], 2), notes,
                    round(cal.calibration_s - before, 2), assumed.source if assumed else "")


#: profiles from the smallest to the largest (the refusal suggests the largest that fits)
PROFILE_ORDER = ("smoke", "laptop", "gpu", "paper")


def check_time(name: str, max_minutes: float | None, *, profile: str | Profile | None = None,
               dataset: str = "fashion-mnist", echo: bool = True, **kwargs: Any) -> Estimate:
    """Estimate a run, print it ('about 3.4 min on this CPU (2 threads)'), and refuse (:class:`RunTooLong`) when it
    is over ``max_minutes`` (None: no limit), naming the estimate and the smaller profile that fits."""
    est = estimate_run(name, dataset=dataset, profile=profile, **kwargs)
    if echo:
        print(f"{est.method} on the {est.profile} profile: {est.describe()} (estimate)")
    if max_minutes is None or est.minutes <= max_minutes:
        return est
    advice = []
    prof = get_profile(profile).name
    for smaller in reversed(PROFILE_ORDER[:PROFILE_ORDER.index(prof)] if prof in PROFILE_ORDER else ()):
        if smaller not in PROFILES:
            continue
        other = estimate_run(name, dataset=dataset, profile=smaller, **kwargs)
        if other.minutes <= max_minutes:
            advice.append(f"PROFILE = {smaller!r} ({other.describe()})")
            break
    way_out = advice[0] if advice else "smaller sizes in the parameters cell"
    raise RunTooLong(f"{est.method} on the {prof} profile would take {est.describe()}, over MAX_MINUTES = "
                     f"{max_minutes:g}. Use {way_out}, or raise MAX_MINUTES if you mean to wait that long.")
