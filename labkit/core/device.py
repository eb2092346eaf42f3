"""Device choice, seeding and a short hardware report."""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import torch

#: devices where torch's fused Adam runs (one kernel per step; +11 % on the CVAE's step on two CPU cores)
FUSED_ADAM_DEVICES: tuple[str, ...] = ("cpu", "cuda")


def pick_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given (or ``$LABKIT_DEVICE``), else cuda, then mps, then cpu."""
    prefer = prefer or os.environ.get("LABKIT_DEVICE")
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Device {prefer!r} was asked for but CUDA is not available here; "
                               "unset LABKIT_DEVICE or pass device='cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); elsewhere bf16 is emulated, and slow.
    ``$LABKIT_CPU_BF16=0/1`` overrides the check (for tests and for CPUs that do not expose their flags)."""
    forced = os.environ.get("LABKIT_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python and torch (all devices) and return a CPU generator seeded the same way."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:  # numpy is optional for the lab itself
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass
    return torch.Generator().manual_seed(seed)


def cpuinfo_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (or of ``cpuinfo``); {} where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


#: the vector extensions that change the lab's CPU kernels (and so its timings and last bits), widest first
CPU_ISA_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_summary(cpuinfo: str | None = None) -> str:
    """Which CPU ran a run, for its record: model name, family/model and the vector extensions the lab's kernels
    use, e.g. ``AMD EPYC (family 25 model 1; avx2)``. Timings (and last bits) differ between such CPUs."""
    fields = cpuinfo_fields(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    isa = ", ".join(f for f in CPU_ISA_FLAGS if f in flags) or "no avx2"
    where = f"family {fields['cpu family']} model {fields['model']}; " if "cpu family" in fields and "model" in fields \
        else ""
    return f"{name} ({where}{isa})"


def hardware_report(device: torch.device | None = None) -> dict[str, str | int]:
    """A small dict describing the machine, for notebooks and result records."""
    device = device or pick_device()
    info: dict[str, str | int] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "machine": f"{platform.system()} {platform.machine()}",
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
