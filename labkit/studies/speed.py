"""The kernel benchmark: every inner loop of the lab on its real models, against this CPU's fp32 peak.

Each loop is one step of the lab's code at a laptop profile's batch size, built from the lab's own pieces: the box
forward (:class:`~labkit.core.blackbox.BlackBox`, decision and score), ZSKD's impression step, a Sign-OPT probe
round, MEKD's and IDEAL's generator steps, FS-BBT's CVAE step and the student step. For each it reports images per
second, achieved FLOP/s from MACs counted by forward hooks (:class:`MacCounter`), and the share of the peak derived
from the CPU's flags, family and clock (:func:`derive_peak`). :class:`SpeedOptions` switches the candidate speed-ups
one at a time (channels-last, bf16 autocast, ``torch.compile``, no per-step host syncs, other batch sizes); with
every switch off (``fp32-nchw``) a loop runs as the lab did before these speed-ups, and :data:`LAB_DEFAULTS` is how
the lab runs now. ``python -m labkit speed`` writes ``results/speed/<machine>/speed.json`` and
``speed.md``; the analysis is in ``docs/speed.md``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import DatasetInfo, dataset_info
from labkit.core.device import cpuinfo_fields
from labkit.core.losses import check_finite
from labkit.core.models import build_model
from labkit.synthesis.boundary import _answers_along_rays, _unit
from labkit.synthesis.cvae import build_cvae, cvae_loss
from labkit.synthesis.generators import LatentGenerator, UpsampleConv2d, build_discriminator, build_generator
from labkit.synthesis.ideal_rounds import crop_and_flip, generator_loss
from labkit.synthesis.impressions import impression_loss

FLOP_CONVENTION = ("FLOP = 2 x MAC of every Conv/ConvTranspose/Linear call, times (1 forward + 1 if its input needs a "
                   "gradient + 1 if its weight needs one): x1 for a no_grad forward, x2 for the impression step "
                   "(input gradient only, frozen teacher), x3 for a layer trained by a backward pass")

# ------------------------------------------------------------------------------------------------ the CPU's peak
#: FMA pipes per core and their width in bits, by (vendor, family, model range): the vendors' optimisation guides.
#: Zen 4 runs AVX-512 on its two 256-bit FMA pipes (a 512-bit FMA takes both halves: "double-pumped").
FMA_TABLE: tuple[tuple[str, int, range, str, int, int], ...] = (
    ("AuthenticAMD", 0x17, range(0x00, 0x30), "Zen / Zen+", 2, 128),
    ("AuthenticAMD", 0x17, range(0x30, 0x100), "Zen 2", 2, 256),
    ("AuthenticAMD", 0x19, range(0x10, 0x20), "Zen 4", 2, 256),
    ("AuthenticAMD", 0x19, range(0x60, 0xB0), "Zen 4", 2, 256),
    ("AuthenticAMD", 0x19, range(0x00, 0x100), "Zen 3", 2, 256),
    ("AuthenticAMD", 0x1A, range(0x00, 0x100), "Zen 5", 2, 512),
)


@dataclass(frozen=True)
class CpuPeak:
    """This machine's fp32 peak and how it was derived."""

    vendor: str
    family: int
    model: int
    microarch: str
    vector_bits: int  # widest fp32 vector ISA the flags report (avx512f 512, avx2 256, else 128)
    fma_pipes: int
    pipe_bits: int
    mhz: float
    clock_source: str
    cores: int
    flops_per_cycle_per_core: float
    gflops: float
    derivation: str


def vector_bits(flags: set[str] | frozenset[str]) -> int:
    """The widest fp32 FMA vector the flags allow: avx512f 512 bits (16 lanes), avx2 + fma 256 (8), else 128 (4)."""
    if "avx512f" in flags:
        return 512
    if "avx2" in flags or "fma" in flags or "avx" in flags:
        return 256
    return 128


def derive_peak(flags: set[str] | frozenset[str], vendor: str, family: int, model: int, mhz: float, cores: int,
                clock_source: str = "given") -> CpuPeak:
    """fp32 peak = cores x clock x 2 (an FMA is 2 FLOP) x FMA pipes x min(pipe, vector width) / 32 bits.

    Pipes and their width come from :data:`FMA_TABLE`; a CPU not in it is assumed to have 2 pipes as wide as its
    widest vector (stated in ``derivation``)."""
    vbits = vector_bits(flags)
    for v, fam, models, name, pipes, pbits in FMA_TABLE:
        if v == vendor and fam == family and model in models:
            arch, source = name, f"{name}: {pipes} FMA pipes of {pbits} bits per core (FMA_TABLE)"
            break
    else:
        arch, pipes, pbits = "unknown", 2, vbits
        source = f"not in FMA_TABLE: assumed 2 FMA pipes as wide as the widest vector ({vbits} bits)"
    if "fma" not in flags and "avx512f" not in flags:
        pipes, source = 1, source + "; no FMA flag: one multiply and one add counted as one FMA pipe"
    lanes = pipes * min(pbits, vbits) // 32
    per_cycle = 2.0 * lanes
    gflops = cores * mhz / 1000.0 * per_cycle
    text = (f"{cores} core(s) x {mhz / 1000:.3f} GHz ({clock_source}) x {per_cycle:g} fp32 FLOP/cycle "
            f"[2 per FMA x {pipes} pipes x min({pbits}-bit pipe, {vbits}-bit vectors)/32 = {lanes} lanes] "
            f"= {gflops:.1f} GFLOP/s; {source}")
    return CpuPeak(vendor, family, model, arch, vbits, pipes, pbits, mhz, clock_source, cores, per_cycle, gflops,
                   text)


def read_cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """Vendor, family, model, flags and clock of this CPU from ``/proc/cpuinfo`` (and lscpu's max MHz if any)."""
    fields = cpuinfo_fields(cpuinfo)
    mhz, source = float(fields.get("cpu MHz", "0") or 0), "cpu MHz in /proc/cpuinfo"
    try:  # a bare-metal kernel exposes the maximum (boost) clock; a VM usually shows only the current one
        max_khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        mhz, source = float(max_khz) / 1000.0, "cpuinfo_max_freq (max MHz)"
    except (OSError, ValueError):
        pass
    if mhz <= 0 and "bogomips" in fields:
        mhz, source = float(fields["bogomips"]) / 2, "BogoMIPS / 2"
    return {"vendor": fields.get("vendor_id", platform.processor() or "unknown"),
            "family": int(fields.get("cpu family", "0") or 0), "model": int(fields.get("model", "0") or 0),
            "model_name": fields.get("model name", platform.processor()), "flags": set(fields.get("flags", "").split()),
            "mhz": mhz, "clock_source": source}


def machine_peak(threads: int | None = None) -> CpuPeak:
    """:func:`derive_peak` for this CPU and the cores torch uses (``threads``, default torch's thread count)."""
    cpu = read_cpu()
    cores = min(threads or torch.get_num_threads(), os.cpu_count() or 1)
    return derive_peak(cpu["flags"], cpu["vendor"], cpu["family"], cpu["model"], cpu["mhz"], cores,
                       cpu["clock_source"])


def machine_slug(peak: CpuPeak) -> str:
    """A folder name for this machine, e.g. ``cpu-2core-zen4``."""
    arch = re.sub(r"[^a-z0-9]+", "", peak.microarch.lower()) or "unknown"
    return f"cpu-{peak.cores}core-{arch}"


# ------------------------------------------------------------------------------------------------ counting MACs
_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a Conv, ConvTranspose or Linear layer (0 for any other module)."""
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, UpsampleConv2d):  # a stride-2 transposed conv: 2x2 of its 4x4 taps reach each output
        return out.numel() * (module.in_channels // module.groups) * 4
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return inp.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return out.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return 0


@dataclass
class MacCounter:
    """Forward hooks on every counted layer under ``roots``: MACs, FLOPs (see :data:`FLOP_CONVENTION`) and bytes of
    activations written (the layer outputs of every leaf module, times the same pass factor)."""

    roots: list[nn.Module]
    macs: int = 0
    flops: int = 0
    activation_bytes: int = 0
    _handles: list[Any] = field(default_factory=list)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        inp = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        outs = [out] if isinstance(out, torch.Tensor) else [o for o in (out if isinstance(out, tuple) else ())
                                                              if isinstance(o, torch.Tensor)]
        grad = torch.is_grad_enabled()
        weight = getattr(module, "weight", None)
        factor = 1 + int(grad and inp is not None and inp.requires_grad) \
            + int(grad and isinstance(weight, torch.Tensor) and weight.requires_grad)
        if isinstance(module, _COUNTED) and inp is not None and outs:
            macs = layer_macs(module, inp, outs[0])
            self.macs += macs
            self.flops += 2 * macs * factor
        self.activation_bytes += factor * sum(o.numel() * o.element_size() for o in outs)

    def __enter__(self) -> MacCounter:
        seen: set[int] = set()
        for root in self.roots:
            for m in root.modules():
                if id(m) not in seen and not list(m.children()):
                    seen.add(id(m))
                    self._handles.append(m.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


# ------------------------------------------------------------------------------------------------ the loops
@dataclass(frozen=True)
class SpeedOptions:
    """The candidate speed-ups, each off by default (the lab's code before them: NCHW, one box call of 4,096)."""

    channels_last: bool = False  # channels-last memory for the models and their inputs
    bf16: bool = False  # bf16 autocast (the box's precision="bf16"; autocast around the other steps)
    compile: bool = False  # torch.compile on the networks (the compile time is reported apart)
    no_sync: bool = False  # drop the per-step host reads (float(loss), isfinite checks) and the box's value check
    fused_adam: bool = False  # Adam(fused=True): one kernel per update instead of a loop over the parameters
    compile_box: bool = False  # torch.compile on the teacher behind a decision or score box only (no_grad forwards)
    fused_upsample: bool = False  # IDEAL's G: each nearest upsample and its 3x3 conv as one transposed conv
    box_chunk: int | None = None  # the box answers in chunks of this many images (BlackBox max_batch; default 4096)
    batch: dict[str, int] = field(default_factory=dict)  # per-loop batch size instead of the laptop one

    def label(self) -> str:
        """A short name: ``fp32-nchw`` for the defaults, else the options that are on."""
        parts = [n for n in SWITCHES if getattr(self, n)]
        parts += [f"box_chunk={self.box_chunk}"] if self.box_chunk else []
        parts += [f"{k}={v}" for k, v in sorted(self.batch.items())]
        return "+".join(parts) or "fp32-nchw"


SWITCHES: tuple[str, ...] = ("channels_last", "bf16", "compile", "no_sync", "fused_adam", "compile_box",
                              "fused_upsample")


def parse_options(spec: str) -> SpeedOptions:
    """Options from a ``+``-joined spec: ``fp32-nchw`` (none), switch names, ``LOOP=BATCH``; e.g.
    ``channels_last+no_sync+student=512``; ``box_chunk=N`` sets the box's chunk."""
    flags: dict[str, bool] = {}
    batch: dict[str, int] = {}
    chunk: int | None = None
    for part in filter(None, spec.replace("-", "_").split("+")):
        if part in ("fp32_nchw", "base"):
            continue
        if part.startswith("box_chunk=") and part[10:].isdigit() and int(part[10:]) > 0:
            chunk = int(part[10:])
        elif "=" in part:
            loop, _, size = part.partition("=")
            loop = loop.replace("_", "-")
            if loop not in LOOP_NAMES or not size.isdigit() or int(size) < 1:
                raise ValueError(f"bad batch option {part!r}: LOOP=BATCH with LOOP one of {', '.join(LOOP_NAMES)}")
            batch[loop] = int(size)
        elif part in SWITCHES:
            flags[part] = True
        else:
            raise ValueError(f"unknown speed option {part!r}; choose from fp32-nchw, {', '.join(SWITCHES)}, "
                             "LOOP=BATCH")
    return SpeedOptions(batch=batch, box_chunk=chunk, **flags)


#: what ``python -m labkit speed`` times by default: the code before the speed-ups, the lab's defaults now (the fp32
#: speed-ups that pay: channels-last, the box in chunks of 512 images on the CPU, fused Adam), and those with the
#: box's teacher compiled (the one place torch.compile pays, an option); bf16 is measured in docs/speed.md
LAB_DEFAULTS = "channels_last+box_chunk=512+fused_adam"
DEFAULT_OPTIONS: tuple[str, ...] = ("fp32-nchw", LAB_DEFAULTS, LAB_DEFAULTS + "+compile_box")


@dataclass
class Built:
    """One loop ready to run: its step, the networks to count MACs on, and images per step."""

    step: Callable[[], object]
    modules: list[nn.Module]
    images: int
    note: str = ""


@dataclass(frozen=True)
class LoopSpec:
    """A benchmarked inner loop: its name, what one step is, the laptop batch and where that size comes from."""

    name: str
    what: str
    batch: int
    source: str
    build: Callable[[BuildContext, SpeedOptions, int], Built]


@dataclass
class BuildContext:
    """What every loop is built from: the teacher (copied per loop), the data set and a seed."""

    teacher: nn.Module
    info: DatasetInfo
    student_arch: str = "lenet5-half"
    seed: int = 0

    def fresh_teacher(self) -> nn.Module:
        """A private copy of the teacher (a box changes its memory format and gradient flags)."""
        return copy.deepcopy(self.teacher)

    def images(self, n: int) -> torch.Tensor:
        """``n`` seeded uniform images of the data set's shape (speed does not depend on their content)."""
        return torch.rand((n, *self.info.image_shape), generator=torch.Generator().manual_seed(self.seed))


def _cast(opts: SpeedOptions) -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16) if opts.bf16 else nullcontext()


def _net(module: nn.Module, opts: SpeedOptions, channels_last: bool | None = None) -> nn.Module:
    """``module`` in the options' memory format (channels_last overrides), compiled if asked."""
    if opts.channels_last if channels_last is None else channels_last:
        module = module.to(memory_format=torch.channels_last)
    return torch.compile(module) if opts.compile else module  # type: ignore[return-value]


def _fmt(x: torch.Tensor, opts: SpeedOptions) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if opts.channels_last and x.dim() == 4 else x


def _box(ctx: BuildContext, access: str, opts: SpeedOptions) -> tuple[BlackBox, nn.Module]:
    """A box over a private copy of the teacher, in the options' precision and memory format, and that copy."""
    teacher = _net(ctx.fresh_teacher(), replace(opts, channels_last=False,
                                                compile=opts.compile or (opts.compile_box and access != "white")))
    box = BlackBox(teacher, access=access, input_shape=tuple(ctx.info.image_shape), num_classes=ctx.info.num_classes,
                   device="cpu", precision="bf16" if opts.bf16 else "fp32", channels_last=opts.channels_last,
                   max_batch=opts.box_chunk or 4096)
    return box, teacher


def _adam(params: Any, opts: SpeedOptions, **kwargs: Any) -> torch.optim.Adam:
    """Adam as the lab builds it, or fused into one kernel per step (``fused_adam``)."""
    return torch.optim.Adam(params, fused=True, **kwargs) if opts.fused_adam else torch.optim.Adam(params, **kwargs)


def _build_box(access: str) -> Callable[[BuildContext, SpeedOptions, int], Built]:
    def build(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
        box, teacher = _box(ctx, access, opts)
        x = ctx.images(batch)
        if opts.no_sync:  # the oracle alone, without the box's per-call value check and bookkeeping
            oracle = box._answer
            return Built(lambda: oracle(x), [teacher], batch)
        return Built(lambda: box(x), [teacher], batch)
    return build


def _build_impression(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
    """ZSKD's crafting step as DataImpressionSynthesizer runs it (clamp parametrisation, τ 20, Adam on pixels)."""
    box, teacher = _box(ctx, "white", opts)  # a white box answers in fp32 whatever the precision asked
    c = ctx.info.num_classes
    y = torch.softmax(torch.randn(batch, c, generator=torch.Generator().manual_seed(ctx.seed)), 1)
    param = _fmt(ctx.images(batch), opts).clone().requires_grad_(True)
    opt = _adam([param], opts, lr=0.1)
    loss_sum = torch.zeros(())
    # a white box answers in fp32 only; bf16 and no_sync call the module directly (no per-step value check)
    forward: Callable[[torch.Tensor], torch.Tensor] = box if not (opts.bf16 or opts.no_sync) else teacher

    def step() -> None:
        nonlocal loss_sum
        with _cast(opts):
            loss = impression_loss(forward(param), y, 20.0)
        loss_sum += loss.detach().sum()
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        with torch.no_grad():
            param.clamp_(0.0, 1.0)
    return Built(step, [teacher], batch, "white box; bf16/no_sync: the module without the box's check")


def _build_probes(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
    """One Sign-OPT probe round (boundary.sign_opt): ``batch`` = samples x probes rays in one decision-box call."""
    probes = 10  # ZSDB3KD laptop n_probes
    samples = max(1, batch // probes)
    box, teacher = _box(ctx, "decision", opts)
    gen = torch.Generator().manual_seed(ctx.seed)
    x0f = ctx.images(samples).flatten(1)
    shape = tuple(ctx.info.image_shape)
    th = _unit(torch.randn(samples, x0f.shape[1], generator=gen))
    g = torch.rand(samples, generator=gen, dtype=torch.float64) * 5
    idx = torch.arange(samples)

    def step() -> None:
        u = _unit(torch.randn((samples, probes, x0f.shape[1]), generator=gen)) * 1e-3
        probe_dir = _unit(th[idx].unsqueeze(1) + u).reshape(samples * probes, -1)
        owner = idx.repeat_interleave(probes)
        _answers_along_rays(box, x0f, shape, owner, probe_dir, g[owner], None)
    return Built(step, [teacher], samples * probes, f"{samples} samples x {probes} probes")


def _build_mekd(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
    """One step of MEKD's deprivatisation.train_generator (soft responses, teacher-imitation head, laptop widths)."""
    info = ctx.info
    G = _net(build_generator(info, 32), opts)
    D = _net(build_discriminator(info, 16), opts)
    opt_g = _adam(G.parameters(), opts, lr=2e-4, betas=(0.5, 0.999))
    opt_d = _adam(D.parameters(), opts, lr=2e-4, betas=(0.5, 0.999))
    box, teacher = _box(ctx, "score", opts)
    gen = torch.Generator().manual_seed(ctx.seed)
    edge = _fmt(ctx.images(max(batch, 1024)), opts)
    sums = {"d_loss": 0.0, "g_loss": 0.0, "info_loss": 0.0, "teacher_agrees": 0.0, "teacher_confidence": 0.0}

    def step() -> None:
        real = edge[torch.randint(edge.shape[0], (batch,), generator=gen)]
        z = torch.randn(batch, info.num_classes, generator=gen)
        with _cast(opts):
            fake = G(z)
            answers = box(fake.detach().float())
            d_real, _ = D(real)
            d_fake, c_fake = D(fake.detach())
            d_loss = (F.binary_cross_entropy_with_logits(d_real.float(), torch.ones_like(d_real, dtype=torch.float))
                      + F.binary_cross_entropy_with_logits(d_fake.float(), torch.zeros_like(d_fake, dtype=torch.float))
                      - (answers * F.log_softmax(c_fake.float(), dim=1)).sum(1).mean())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with _cast(opts):
            g_fake, g_cls = D(fake)
            info_loss = F.cross_entropy(g_cls.float(), z.argmax(1))
            g_loss = F.binary_cross_entropy_with_logits(g_fake.float(), torch.ones_like(g_fake, dtype=torch.float)) \
                + info_loss
        if not opts.no_sync:
            check_finite(g_loss, "generator loss")
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if not opts.no_sync:  # the per-step host reads of train_generator's epoch sums
            top = answers.argmax(1)
            sums["d_loss"] += float(d_loss.detach()) * batch
            sums["g_loss"] += float(g_loss.detach()) * batch
            sums["info_loss"] += float(info_loss.detach()) * batch
            sums["teacher_agrees"] += float((top == z.argmax(1)).float().sum())
            sums["teacher_confidence"] += float(answers.max(1).values.sum())
    return Built(step, [G, D, teacher], batch, "G and D steps and one score-box call")


def _build_ideal(nz: int, width: int, lr: float) -> Callable[[BuildContext, SpeedOptions, int], Built]:
    """One generator step of IDEAL's round (ideal_rounds.IDEALSynthesizer) at latent size ``nz`` and G width
    ``width``: G and the guide already channels-last, as the code runs them."""
    def build(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
        info = ctx.info
        shape = tuple(info.image_shape)
        G = _net(LatentGenerator(nz, shape, width, opts.fused_upsample), opts,  # type: ignore[arg-type]
                 channels_last=True)
        guide = build_model(ctx.student_arch, shape[0], info.num_classes, shape[1])
        guide = _net(guide.eval(), opts, channels_last=True)
        for p in guide.parameters():
            p.requires_grad_(False)
        opt_g = _adam(G.parameters(), opts, lr=lr, betas=(0.5, 0.999))
        gen = torch.Generator().manual_seed(ctx.seed)
        z = torch.randn(batch, nz, generator=gen)
        targets = torch.arange(batch) % info.num_classes
        state = {"best_loss": torch.full((), math.inf), "best_x": torch.zeros((batch, *shape))}

        def step() -> None:
            opt_g.zero_grad(set_to_none=True)
            with _cast(opts):
                images = G(z)
                loss = generator_loss(guide(crop_and_flip(images, gen)).float(), targets, 5.0, "authors")
            better = loss.detach() < state["best_loss"]
            state["best_x"] = torch.where(better, images.detach().float(), state["best_x"])
            state["best_loss"] = torch.where(better, loss.detach(), state["best_loss"])
            loss.backward()
            opt_g.step()
        return Built(step, [G, guide], batch,
                     f"G (width {width}, nz {nz}) through the frozen guide, as the code: channels-last")
    return build


def _build_cvae(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
    """One step of cvae.train_cvae on the MLP CVAE (latent 2, Adam 3e-3)."""
    info = ctx.info
    model = _net(build_cvae(tuple(info.image_shape), info.num_classes, 2).train(), opts)
    opt = _adam(model.parameters(), opts, lr=3e-3)
    gen = torch.Generator().manual_seed(ctx.seed)
    x, labels = ctx.images(2000), torch.randint(info.num_classes, (2000,), generator=gen)
    total = [0.0]

    def step() -> None:
        idx = torch.randint(x.shape[0], (batch,), generator=gen)
        with _cast(opts):
            recon, mu, logvar = model(x[idx], labels[idx])
        loss = cvae_loss(recon.float(), x[idx], mu.float(), logvar.float())
        if not opts.no_sync:
            check_finite(loss, "CVAE loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not opts.no_sync:
            total[0] += float(loss.detach()) * batch
    return Built(step, [model], batch)


def _build_student(ctx: BuildContext, opts: SpeedOptions, batch: int) -> Built:
    """One step of core.train.fit: Adam with one-cycle schedule, the KD loss on soft targets, its host reads."""
    info = ctx.info
    shape = tuple(info.image_shape)
    model = _net(build_model(ctx.student_arch, shape[0], info.num_classes, shape[1]).train(), opts)
    opt = _adam([p for p in model.parameters() if p.requires_grad], opts, lr=5e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=10 ** 7, pct_start=0.15)
    gen = torch.Generator().manual_seed(ctx.seed)
    x = _fmt(ctx.images(4096), opts)
    soft = torch.softmax(torch.randn(4096, info.num_classes, generator=gen), 1)
    running = [0.0]

    def step() -> None:
        idx = torch.randint(x.shape[0], (batch,), generator=gen)
        xb, tb = x[idx], soft[idx]
        with _cast(opts):
            logits = model(xb)
        loss = F.kl_div(F.log_softmax(logits.float() / 4.0, 1), tb, reduction="batchmean") * 16.0
        if not opts.no_sync and not bool(torch.isfinite(loss)):
            raise FloatingPointError("student loss is not finite")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if not opts.no_sync:
            running[0] += float(loss.detach()) * batch
    return Built(step, [model], batch)


LOOPS: tuple[LoopSpec, ...] = (
    LoopSpec("box-decision", "box forward, decision (LeNet-5 teacher)", 4096,
             "BlackBox max_batch; ZSDB3KD laptop init_batch 8192 in calls of 4096", _build_box("decision")),
    LoopSpec("box-score", "box forward, score (LeNet-5 teacher)", 4096, "BlackBox max_batch", _build_box("score")),
    LoopSpec("impression", "ZSKD impression step: forward + input gradient + Adam on pixels", 3000,
             "ZSKD laptop craft_batch", _build_impression),
    LoopSpec("signopt-probes", "Sign-OPT probe round: samples x probes rays, one decision-box call", 4000,
             "ZSDB3KD laptop: 40 per class x 10 classes x 10 probes", _build_probes),
    LoopSpec("mekd-generator", "MEKD GAN step: G, D (real, fake, G pass), one score-box call", 128,
             "MEKD laptop gan_batch; g_width 32, d_width 16", _build_mekd),
    LoopSpec("ideal-generator", "IDEAL generator step: G through crop/flip and the frozen guide", 500,
             "IDEAL laptop per_round; nz 64, g_width 8", _build_ideal(64, 8, 1e-2)),
    LoopSpec("ideal-public-generator", "IDEAL public-code generator step: width-64 G, crop/flip, frozen guide", 500,
             "ideal-public-code laptop per_round; nz 256, g_width 64", _build_ideal(256, 64, 1e-3)),
    LoopSpec("cvae", "FS-BBT CVAE step (MLP CVAE, Adam)", 128, "FS-BBT laptop cvae_batch_size", _build_cvae),
    LoopSpec("student", "student step, LeNet-5-half, Adam + one-cycle, KD loss", 128,
             "laptop batch_size of most rows (ZSDB3KD: 256)", _build_student),
)
LOOP_NAMES: tuple[str, ...] = tuple(spec.name for spec in LOOPS)


# ------------------------------------------------------------------------------------------------ timing
@dataclass
class LoopResult:
    """One loop's measurement."""

    loop: str
    what: str
    options: str
    batch: int
    images_per_step: int
    step_ms: float
    images_per_s: float
    mflop_per_image: float
    gflops: float
    peak_share: float
    activation_mb_per_step: float
    first_call_s: float
    tiny_step_ms: float | None = None
    note: str = ""
    load: str = ""


def loadavg() -> str:
    """``uptime``'s load average (1, 5, 15 min), or '' where the OS has none."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return ""


def _timed(step: Callable[[], object], k: int) -> float:
    t0 = time.perf_counter()
    for _ in range(k):
        step()
    return (time.perf_counter() - t0) / k


def time_steps(steps: list[Callable[[], object]], warmup: int, repeats: int, target_s: float
               ) -> list[tuple[float, float]]:
    """For each step: seconds of its first call, and the best of ``repeats`` mean step times (each repeat about
    ``target_s``). The repeats are interleaved (A, B, A, B, ...) so that a burst of other load hits every step
    alike, and the best of them is taken."""
    firsts = [_timed(step, 1) for step in steps]
    ks = []
    for step in steps:
        for _ in range(max(0, warmup)):
            step()
        ks.append(max(1, int(target_s / max(_timed(step, 1), 1e-6))))
    best = [math.inf] * len(steps)
    for _ in range(max(1, repeats)):
        for i, step in enumerate(steps):
            best[i] = min(best[i], _timed(step, ks[i]))
    return list(zip(firsts, best))


def measure_loop(spec: LoopSpec, ctx: BuildContext, options: list[SpeedOptions], peak: CpuPeak, *,
                 warmup: int = 2, repeats: int = 5, target_s: float = 0.25, tiny: bool = True) -> list[LoopResult]:
    """Build ``spec`` under every option set, count its FLOPs on one eager step each, and time them interleaved
    (best of ``repeats``); ``tiny`` also times the code without speed-ups at two images (the op-launch floor)."""
    counted, built, flops = [], [], []
    for opts in options:
        batch = int(opts.batch.get(spec.name, spec.batch))
        torch.manual_seed(ctx.seed)
        eager = spec.build(ctx, replace(opts, compile=False, compile_box=False), batch)
        with MacCounter(eager.modules) as counter:
            eager.step()
        counted.append((batch, counter))
        built.append(eager if not (opts.compile or opts.compile_box) else spec.build(ctx, opts, batch))
        flops.append(counter.flops / eager.images)
    steps = [b.step for b in built]
    if tiny:  # the same step at two images (BatchNorm needs two; two samples' probes for the probe round)
        steps.append(spec.build(ctx, SpeedOptions(), 20 if spec.name == "signopt-probes" else 2).step)
    times = time_steps(steps, warmup, repeats, target_s)
    tiny_ms = 1000 * times[-1][1] if tiny else None
    out = []
    for opts, b, (batch, counter), fpi, (first, best) in zip(options, built, counted, flops, times):
        ips = b.images / best
        label = replace(opts, batch={k: v for k, v in opts.batch.items() if k == spec.name}).label()
        out.append(LoopResult(spec.name, spec.what, label, batch, b.images, 1000 * best, ips, fpi / 1e6,
                              ips * fpi / 1e9, ips * fpi / 1e9 / peak.gflops, counter.activation_bytes / 1e6, first,
                              tiny_ms, b.note, loadavg()))
    return out


def memory_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    """GB/s of a large tensor copy (read + write counted), best of ``repeats``: the memory roofline."""
    src = torch.ones(mb * 2 ** 20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best / 1e9


def op_overhead_us(repeats: int = 2000) -> float:
    """Microseconds of one tiny eager op (``add`` on 1-element tensors): the per-op launch cost."""
    a, b = torch.ones(1), torch.ones(1)
    for _ in range(100):
        torch.add(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.add(a, b)
    return (time.perf_counter() - t0) / repeats * 1e6


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads, then restore the old count."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class SpeedRecord:
    """Everything one ``python -m labkit speed`` run measured."""

    machine: dict[str, Any]
    peak: dict[str, Any]
    flop_convention: str
    memory_gb_s: float
    op_overhead_us: float
    repeats: int
    results: list[LoopResult]
    seconds: float
    load_before: str
    load_after: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["results"] = [asdict(r) for r in self.results]
        return out


def default_context(dataset: str = "fashion-mnist", seed: int = 0) -> BuildContext:
    """The lab's teacher for ``dataset`` (from the teacher cache) and its data set's shape."""
    from labkit.core.teachers import default_student_arch, get_teacher

    teacher = get_teacher(dataset, device="cpu", progress=False).model.cpu().eval()
    return BuildContext(teacher, dataset_info(dataset), default_student_arch(dataset), seed)


def run_speed(options: list[SpeedOptions] | None = None, loops: list[str] | None = None, *, threads_n: int = 2,
              repeats: int = 5, warmup: int = 2, target_s: float = 0.25, tiny: bool = True,
              ctx: BuildContext | None = None, progress: Callable[[LoopResult], None] | None = None,
              bandwidth_mb: int = 256) -> SpeedRecord:
    """Time every loop (or ``loops``) under every option set (default: :data:`DEFAULT_OPTIONS`)."""
    unknown = set(loops or ()) - set(LOOP_NAMES)
    if unknown:
        raise ValueError(f"unknown loop(s) {sorted(unknown)}; choose from {', '.join(LOOP_NAMES)}")
    start, load_before = time.perf_counter(), loadavg()
    with threads(threads_n):
        ctx = ctx or default_context()
        peak = machine_peak(torch.get_num_threads())
        bandwidth, overhead = memory_bandwidth(bandwidth_mb), op_overhead_us()
        results: list[LoopResult] = []
        for spec in LOOPS:
            if loops and spec.name not in loops:
                continue
            for r in measure_loop(spec, ctx, options or [SpeedOptions()], peak, warmup=warmup, repeats=repeats,
                                  target_s=target_s, tiny=tiny):
                results.append(r)
                if progress is not None:
                    progress(r)
        cpu = read_cpu()
        machine = {"model_name": cpu["model_name"], "vendor": cpu["vendor"], "family": cpu["family"],
                   "model": cpu["model"], "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(), "slug": machine_slug(peak),
                   "bf16_flag": "avx512_bf16" in cpu["flags"]}
    return SpeedRecord(machine, asdict(peak), FLOP_CONVENTION, bandwidth, overhead, repeats, results,
                       time.perf_counter() - start, load_before, loadavg())


BASELINE = "fp32-nchw"
TARGET_SPEEDUP = 3.0


def memory_roofline(record: SpeedRecord, r: LoopResult) -> float:
    """The img/s of a loop that only streamed its layer outputs through memory at the measured copy bandwidth."""
    per_image = r.activation_mb_per_step * 1e6 / r.images_per_step
    return record.memory_gb_s * 1e9 / per_image if per_image else math.inf


def loop_verdicts(record: SpeedRecord, target: float = TARGET_SPEEDUP) -> list[dict[str, Any]]:
    """Per loop: the speed-up of the lab's defaults and of the best option set over ``fp32-nchw``, and, where the best
    stays under ``target``, the measured ceilings that say why: the op-launch ceiling (the step without its fixed
    per-step cost, from the 2-image step), the memory roofline, and the share of the fp32 peak that ``target`` would
    need. Loops without an ``fp32-nchw`` row are left out."""
    out = []
    for loop in dict.fromkeys(r.loop for r in record.results):
        rows = [r for r in record.results if r.loop == loop]
        base = next((r for r in rows if r.options == BASELINE), None)
        if base is None:
            continue
        lab = next((r for r in rows if r.options == options_label(LAB_DEFAULTS)), None)
        best = max(rows, key=lambda r: r.images_per_s)
        v: dict[str, Any] = {"loop": loop, "before": base.images_per_s,
                             "lab": lab.images_per_s if lab else None, "lab_x": lab.images_per_s / base.images_per_s
                             if lab else None, "best": best.images_per_s, "best_options": best.options,
                             "best_x": best.images_per_s / base.images_per_s}
        v["reached"] = v["best_x"] >= target
        if not v["reached"]:
            ref = lab or best
            fixed_ms = ref.tiny_step_ms or 0.0
            launch = ref.images_per_step / ((ref.step_ms - fixed_ms) / 1e3) if ref.step_ms > fixed_ms else math.inf
            roof = memory_roofline(record, ref)
            need = target * base.images_per_s * ref.mflop_per_image * 1e6 / (record.peak["gflops"] * 1e9)
            bound = ("op-launch bound" if fixed_ms / ref.step_ms >= 0.2 else
                     "memory bound" if ref.images_per_s >= 0.5 * roof else "kernel bound (compute)")
            v.update({"fixed_share": fixed_ms / ref.step_ms, "launch_ceiling": launch,
                      "launch_ceiling_x": launch / base.images_per_s, "memory_roofline": roof,
                      "peak_share": ref.peak_share, "peak_share_needed": need, "bound": bound})
        out.append(v)
    return out


def options_label(spec: str) -> str:
    """The label :class:`SpeedOptions` prints for an option spec (switches in a fixed order)."""
    return parse_options(spec).label()


def verdict_markdown(record: SpeedRecord, target: float = TARGET_SPEEDUP) -> list[str]:
    """The ``≥ 3×, or why not`` table of :func:`loop_verdicts`."""
    lines = [f"## ≥ {target:.0f}× over `{BASELINE}`, or why not", "",
             "`lab` is the lab's defaults (`" + LAB_DEFAULTS + "`); `best` the fastest option set measured. Where "
             f"the best stays under {target:.0f}×: the fixed per-step cost's share of the step and the img/s without "
             "it (op-launch ceiling), the memory roofline, and the share of the fp32 peak the kernels reach against "
             f"the share {target:.0f}× would need.", "",
             "| loop | before img/s | lab img/s | lab × | best × (options) | reached | why not: fixed share, op-launch "
             "ceiling | memory roofline img/s | % of peak now → needed | bound |", "|---|---:|---:|---:|---|---|---|"
             "---:|---|---|"]
    for v in loop_verdicts(record, target):
        lab = "—" if v["lab"] is None else f"{v['lab']:,.0f}"
        lab_x = "—" if v["lab_x"] is None else f"{v['lab_x']:.2f}"
        head = (f"| {v['loop']} | {v['before']:,.0f} | {lab} | {lab_x} | {v['best_x']:.2f} (`{v['best_options']}`) "
                f"| {'yes' if v['reached'] else 'no'} |")
        if v["reached"]:
            lines.append(head + " | | | |")
        else:
            lines.append(head + f" {100 * v['fixed_share']:.0f} %, {v['launch_ceiling']:,.0f} img/s "
                         f"({v['launch_ceiling_x']:.2f}×) | {v['memory_roofline']:,.0f} | "
                         f"{100 * v['peak_share']:.1f} → {100 * v['peak_share_needed']:.1f} | {v['bound']} |")
    return lines + [""]


def to_markdown(record: SpeedRecord) -> str:
    """The record as a Markdown table with the peak's derivation and the FLOP convention."""
    peak = record.peak
    lines = [f"# Inner-loop speed on {record.machine['model_name']} ({record.machine['slug']})", "",
             f"torch {record.machine['torch']}, {record.machine['threads']} threads, best of {record.repeats}; "
             f"load average before {record.load_before}, after {record.load_after}; {record.seconds:.0f} s in all.",
             "", f"**fp32 peak** {peak['gflops']:.1f} GFLOP/s: {peak['derivation']}.", "",
             f"**FLOP convention**: {record.flop_convention}.", "",
             f"**Rooflines**: memory copy {record.memory_gb_s:.1f} GB/s (read + write); one tiny eager op "
             f"{record.op_overhead_us:.1f} µs.", "",
             "Columns: `memory roofline` is the copy bandwidth over the bytes of layer outputs one image writes "
             "(times the pass factor), the img/s a loop that only streamed its activations through memory would "
             "reach; `2-image step` is the same step at two images, its fixed per-step cost (op launches, Python, "
             "optimizer), and `fixed share` that cost over the full step.", "",
             "| loop | options | batch | img/s | step ms | MFLOP/img | GFLOP/s | % of peak | memory roofline img/s "
             "| 2-image step ms | fixed share |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record.results:
        tiny = "" if r.tiny_step_ms is None else f"{r.tiny_step_ms:.2f}"
        share = "" if r.tiny_step_ms is None else f"{100 * r.tiny_step_ms / r.step_ms:.0f}%"
        roof = memory_roofline(record, r)
        lines.append(f"| {r.loop} | {r.options} | {r.batch:,} | {r.images_per_s:,.0f} | {r.step_ms:.2f} | "
                     f"{r.mflop_per_image:.3f} | {r.gflops:.2f} | {100 * r.peak_share:.1f} | {roof:,.0f} | {tiny} | "
                     f"{share} |")
    lines += [""] + verdict_markdown(record)
    lines += ["What each loop is:", ""]
    for spec in LOOPS:
        lines.append(f"* `{spec.name}`: {spec.what}; batch {spec.batch:,} ({spec.source}).")
    return "\n".join(lines) + "\n"


def write_record(record: SpeedRecord, out_dir: Path) -> tuple[Path, Path]:
    """Write ``speed.json`` and ``speed.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "speed.json", out_dir / "speed.md"
    js.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    md.write_text(to_markdown(record))
    return js, md
