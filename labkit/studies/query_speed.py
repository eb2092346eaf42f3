"""How fast the black box answers, and how many calls a method makes: the measurements behind the query path.

* :func:`box_throughput`: images per second through a :class:`~labkit.core.blackbox.BlackBox` against a raw
  ``no_grad`` forward of the same model on the same batches (best of ``repeats``), and their ratio.
* :func:`zsdb3kd_calls`: box calls and queries per phase for a few ZSDB3KD iterations at a profile's sizes,
  and the calls per search-and-step iteration.

``python -m labkit query-speed`` prints both. Time them on an idle machine, one job at a time.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import DatasetInfo


@dataclass(frozen=True)
class Throughput:
    """Images per second through the box and through the raw model, for one access level and batch size."""

    access: str
    batch_size: int
    images: int
    box_per_s: float
    raw_per_s: float

    @property
    def ratio(self) -> float:
        """Box throughput as a fraction of the raw forward's (1.0: the box costs nothing)."""
        return self.box_per_s / self.raw_per_s


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def box_throughput(model: nn.Module, x: torch.Tensor, batch_size: int, access: str = "decision",
                   num_classes: int | None = None, repeats: int = 3, max_batch: int = 4096) -> Throughput:
    """Send ``x`` in batches of ``batch_size`` through a fresh box and through ``model`` under ``no_grad`` (chunked
    like the box, by ``max_batch``, with the same argmax/softmax), and compare the best of ``repeats`` timings."""
    model = model.eval()
    batches = [x[i:i + batch_size] for i in range(0, x.shape[0], batch_size)]
    box = BlackBox(model, access=access, input_shape=tuple(x.shape[1:]), num_classes=num_classes,
                   device=x.device, max_batch=max_batch)

    def raw() -> None:
        with torch.no_grad():
            for b in batches:
                logits = torch.cat([model(b[s:s + max_batch]) for s in range(0, b.shape[0], max_batch)]).float()
                logits.argmax(1) if access == "decision" else torch.softmax(logits, 1)

    def boxed() -> None:
        for b in batches:
            box(b)

    n = int(x.shape[0])
    t_raw, t_box = _best_seconds(raw, repeats), _best_seconds(boxed, repeats)
    return Throughput(access, batch_size, n, n / t_box, n / t_raw)


@dataclass(frozen=True)
class CallCount:
    """Box calls and queries per phase of a short ZSDB3KD synthesis."""

    iterations: int
    pseudo_samples: int
    calls: dict[str, int]
    queries: dict[str, int]
    seconds: float

    @property
    def calls_per_iteration(self) -> float:
        """Calls of the search-and-step loop (``nearest boundary`` and ``step away``) per iteration."""
        loop = self.calls.get("nearest boundary", 0) + self.calls.get("step away", 0)
        return loop / max(1, self.iterations)


def zsdb3kd_calls(model: nn.Module, info: DatasetInfo, profile: str = "laptop", iterations: int = 2,
                  seed: int = 0, device: torch.device | str = "cpu", **overrides: Any) -> CallCount:
    """Run ZSDB3KD's synthesis (pseudo-samples only, ``iterations`` iterations, ``profile``'s other sizes and any
    config ``overrides``) through a decision box and count its calls per phase."""
    from labkit.methods.zsdb3kd import ZSDB3KDConfig
    from labkit.synthesis.pseudo_samples import PseudoSampleSynthesizer

    cfg = ZSDB3KDConfig.for_profile(profile, iterations=iterations, ingredients=("pseudo-samples",),
                                    curve_points=0, **overrides)
    dev = torch.device(device)
    box = BlackBox(model, access="decision", input_shape=info.image_shape, num_classes=info.num_classes, device=dev)
    n = cfg.per_class * info.num_classes
    t0 = time.perf_counter()
    synth = PseudoSampleSynthesizer(box, cfg.pseudo_sample_settings(), info.num_classes, info.image_shape, seed, dev)
    synth.synthesize(n, progress=False)
    return CallCount(iterations, n, box.calls_by_phase, box.queries_by_phase, time.perf_counter() - t0)
