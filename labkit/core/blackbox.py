"""The black-box boundary between a method and its teacher.

A method reaches the teacher only through a :class:`BlackBox`. Its access level
decides what a query returns:

========== ==========================================================
decision   int64 class ids only (top-1)
score      detached probabilities only (softmax at τ = 1)
white      logits with input gradients, and the module itself via ``.module``
========== ==========================================================

On CUDA the box answers under bf16 autocast (``precision="auto"``; ``"fp32"`` turns it off). On the CPU
``"auto"`` is fp32 and ``"bf16"`` is an option (CPUs with AVX512-BF16 or AMX only). On CUDA and the CPU the
teacher runs channels-last, and on the CPU in chunks of :data:`CPU_MAX_BATCH` images (a chunk's activations stay
in cache; ``docs/speed.md`` has the measurements). The answers are always int64 ids or fp32 probabilities.

Every call is batched, counted per image, logged by phase, and checked: a wrong shape,
dtype, channel count, a value outside [0, 1] or a NaN is refused with a message that
says what was expected. A call that would pass the budget raises
:class:`~labkit.core.errors.QueryBudgetExceeded` *before* anything is answered or counted.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from labkit.core.device import cpu_has_bf16
from labkit.core.errors import AccessDenied, ConfigError, InvalidQueryError, QueryBudgetExceeded, UnknownNameError

Access = Literal["decision", "score", "white"]
ACCESS_LEVELS: tuple[str, ...] = ("decision", "score", "white")


@dataclass(frozen=True)
class QueryEvent:
    """One call to the box: its phase, how many images, and the running total after it."""

    phase: str
    n: int
    total: int


PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
#: images per teacher call on the CPU: 512 channels-last images of LeNet-5 keep conv-1's output in cache
CPU_MAX_BATCH = 512
GPU_MAX_BATCH = 4096


def bf16_available(device: torch.device) -> bool:
    """Whether bf16 runs natively on ``device``: any CUDA device, or a CPU with AVX512-BF16 or AMX."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())


def resolve_precision(precision: str, device: torch.device, access: str) -> str:
    """``auto`` is bf16 autocast on CUDA for decision and score boxes and fp32 otherwise (a white box's gradients
    included); ``bf16`` asked for explicitly is honoured, on the CPU only where it has bf16 instructions."""
    if precision not in PRECISIONS:
        raise UnknownNameError("box precision", precision, PRECISIONS)
    if precision == "auto":
        return "bf16" if device.type == "cuda" and access != "white" else "fp32"
    if precision == "bf16" and device.type == "cpu" and not bf16_available(device):
        raise ConfigError("precision='bf16' needs a CPU with AVX512-BF16 or AMX (this one has neither, so bf16 "
                          "would be emulated and slower than fp32). Use precision='fp32' (the CPU default).")
    return precision


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on ``device`` when ``precision`` is ``bf16``; a no-op context otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _make_oracle(model: nn.Module, access: str, device: torch.device, max_batch: int, precision: str,
                 channels_last: bool, compiled: bool) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                               Callable[[], nn.Module]]:
    """Close over the model so that no attribute of the box holds it."""
    autocast = precision == "bf16"
    # torch.compile of the no-grad forward: 1.5x per image on two CPU cores, after about 7 s of compiling
    # (docs/speed.md), so a method asks for it only where its run sends millions of images
    net: list[Callable[[torch.Tensor], torch.Tensor]] = [torch.compile(model) if compiled else model]

    def run(part: torch.Tensor) -> torch.Tensor:
        try:
            return net[0](part)
        except Exception as exc:  # inductor needs a C++ compiler; without one the box answers eagerly
            if net[0] is model:
                raise
            warnings.warn(f"torch.compile of the teacher failed ({type(exc).__name__}: {str(exc)[:200]}); "
                          "the box answers without it (same answers, slower).", RuntimeWarning, stacklevel=4)
            net[0] = model
            return model(part)

    def forward(x: torch.Tensor) -> torch.Tensor:
        model.eval()  # a teacher is always queried in eval mode (BN, dropout)
        chunks = []
        for start in range(0, x.shape[0], max_batch):
            part = x[start:start + max_batch].to(device, non_blocking=True)
            if channels_last and part.dim() == 4:
                part = part.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                chunks.append(run(part))
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def answer(x: torch.Tensor) -> torch.Tensor:
        if access == "white":
            out = forward(x)
            return out.float() if autocast else out  # bf16 logits reach the loss in fp32
        with torch.no_grad():
            logits = forward(x).float()  # bf16 logits are compared and normalised in fp32
            if access == "decision":
                return logits.argmax(1).to(torch.int64)
            return torch.softmax(logits, 1).detach().clone()

    def module() -> nn.Module:
        if access != "white":
            raise AccessDenied(
                f"This is a {access}-based black box: it answers "
                f"{'class ids' if access == 'decision' else 'probabilities'} "
                "and nothing else. Only a 'white' box gives the module; build one with BlackBox(model, access='white')."
            )
        return model

    return answer, module


class BlackBox:
    """Counted, access-limited teacher queries.

    >>> bb = BlackBox(teacher, access="decision", budget=10_000, input_shape=(1, 28, 28))
    >>> labels = bb(images)          # int64 class ids, bb.queries += len(images)
    """

    def __init__(self, model: nn.Module, access: str = "decision", budget: int | None = None, *,
                 input_shape: tuple[int, ...] | None = None, num_classes: int | None = None,
                 device: torch.device | str | None = None, value_range: tuple[float, float] = (0.0, 1.0),
                 max_batch: int | None = None, name: str = "teacher", precision: str = "auto",
                 channels_last: bool | None = None, compile_teacher: bool = False) -> None:
        if access not in ACCESS_LEVELS:
            raise UnknownNameError("access level", access, ACCESS_LEVELS)
        if budget is not None and budget < 0:
            raise ValueError("budget must be None (unlimited) or a non-negative number of queries")
        if device is None:
            try:
                device = next(model.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        device = torch.device(device)
        self._precision = resolve_precision(precision, device, access)
        # channels-last: 1.7-2.1x for the teachers' convolutions on CUDA and on the CPU (docs/speed.md)
        self._channels_last = device.type in ("cuda", "cpu") if channels_last is None else bool(channels_last)
        if max_batch is None:
            max_batch = CPU_MAX_BATCH if device.type == "cpu" else GPU_MAX_BATCH
        if max_batch < 1:
            raise ValueError("max_batch must be a positive number of images per teacher call")
        if self._channels_last:
            model.to(memory_format=torch.channels_last)
        self._compiled = bool(compile_teacher) and access != "white"  # a white box's graph stays eager
        self._answer, self._module = _make_oracle(model, access, device, max_batch, self._precision,
                                                  self._channels_last, self._compiled)
        self._init_counters(access=access, budget=budget, input_shape=input_shape, num_classes=num_classes,
                            device=device, value_range=value_range, name=name)

    def _init_counters(self, *, access: str, budget: int | None, input_shape: tuple[int, ...] | None,
                       num_classes: int | None, device: torch.device, value_range: tuple[float, float],
                       name: str) -> None:
        """The facts and counters every box keeps (in process, or served: :mod:`labkit.core.remote`)."""
        self._access = access
        self._device = torch.device(device)
        self._budget = budget
        self._queries = 0
        self._by_phase: dict[str, int] = {}
        self._log: list[QueryEvent] = []
        self._phase = "default"
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self._num_classes = num_classes
        self._range = value_range
        self.name = name

    # ------------------------------------------------------------------ read-only facts
    @property
    def access(self) -> str:
        """``decision``, ``score`` or ``white``."""
        return self._access

    @property
    def queries(self) -> int:
        """Images queried so far (every image counts once per call)."""
        return self._queries

    @property
    def calls(self) -> int:
        """Calls answered so far (one call may hold any number of images)."""
        return len(self._log)

    @property
    def calls_by_phase(self) -> dict[str, int]:
        """Calls per phase name."""
        out: dict[str, int] = {}
        for event in self._log:
            out[event.phase] = out.get(event.phase, 0) + 1
        return out

    @property
    def precision(self) -> str:
        """``fp32``, or ``bf16`` (autocast; answers are still int64 ids or fp32 probabilities)."""
        return self._precision

    @property
    def compiled(self) -> bool:
        """Whether the teacher's forward runs through ``torch.compile`` (decision and score boxes only)."""
        return self._compiled

    @property
    def budget(self) -> int | None:
        """The query budget (None: unlimited)."""
        return self._budget

    @property
    def remaining(self) -> int | None:
        """Queries left before the budget (None: unlimited)."""
        return None if self._budget is None else self._budget - self._queries

    @property
    def device(self) -> torch.device:
        """Where queries are answered; send batches here to avoid copies."""
        return self._device

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one input, if the box was told it."""
        return self._input_shape

    @property
    def num_classes(self) -> int | None:
        """Number of classes, if the box was told it."""
        return self._num_classes

    @property
    def queries_by_phase(self) -> dict[str, int]:
        """Queries per phase name (a copy)."""
        return dict(self._by_phase)

    @property
    def query_log(self) -> list[QueryEvent]:
        """Every call in order, with its phase and the running total (a copy)."""
        return list(self._log)

    @property
    def module(self) -> nn.Module:
        """The teacher module; only a ``white`` box gives it, others raise :class:`AccessDenied`."""
        return self._module()

    def __repr__(self) -> str:
        budget = "unlimited" if self._budget is None else f"{self._budget:,}"
        return f"BlackBox(access={self._access!r}, queries={self._queries:,}, budget={budget})"

    def __getstate__(self) -> dict[str, object]:
        raise AccessDenied("A BlackBox cannot be pickled or copied: that would leak the teacher.")

    # ------------------------------------------------------------------ querying
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[BlackBox]:
        """Count the queries made inside this ``with`` block under ``name``."""
        old, self._phase = self._phase, name
        try:
            yield self
        finally:
            self._phase = old

    def _validate(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise InvalidQueryError(f"A query must be a torch.Tensor batch, got {type(x).__name__}.")
        if not torch.is_floating_point(x):
            raise InvalidQueryError(f"A query must be a float tensor with values in [0, 1], got dtype {x.dtype}. "
                                    "Convert uint8 images with x.float() / 255.")
        if self._input_shape is not None:
            want = self._input_shape
            if x.dim() == len(want) and tuple(x.shape) == want:
                raise InvalidQueryError(f"Got one input of shape {tuple(x.shape)}; the box answers batches of shape "
                                        f"(N, {', '.join(map(str, want))}). Use x.unsqueeze(0).")
            if x.dim() != len(want) + 1:
                raise InvalidQueryError(f"Expected a batch of shape (N, {', '.join(map(str, want))}), "
                                        f"got {tuple(x.shape)}.")
            if len(want) == 3 and x.shape[1] != want[0]:
                raise InvalidQueryError(f"Expected {want[0]} channel(s), got {x.shape[1]} "
                                        f"(batch shape {tuple(x.shape)}, expected (N, {', '.join(map(str, want))})).")
            if tuple(x.shape[1:]) != want:
                raise InvalidQueryError(f"Expected inputs of shape {want}, got {tuple(x.shape[1:])}.")
        if x.shape[0] == 0:
            raise InvalidQueryError("Empty batch: send at least one input.")
        # one pass and one host sync for the value checks: NaN and ±inf show up in the min or max
        xd = x.detach()
        xmin, xmax = (float(v) for v in torch.stack(torch.aminmax(xd)).tolist())
        if not (math.isfinite(xmin) and math.isfinite(xmax)):
            bad = int((~torch.isfinite(xd)).sum())  # the slow count, only for a batch that is refused
            raise InvalidQueryError(f"The batch holds {bad} NaN or infinite value(s); fix the input before querying "
                                    "(nothing was counted).")
        lo, hi = self._range
        if xmin < lo - 1e-6 or xmax > hi + 1e-6:
            raise InvalidQueryError(f"Values must lie in [{lo}, {hi}] but this batch spans [{xmin:.4g}, {xmax:.4g}]. "
                                    "Clamp with x.clamp(0, 1).")

    def __call__(self, x: torch.Tensor, *, phase: str | None = None) -> torch.Tensor:
        """Answer a batch: class ids (decision), probabilities (score) or logits (white)."""
        self._validate(x)
        n = int(x.shape[0])
        if self._budget is not None and self._queries + n > self._budget:
            raise QueryBudgetExceeded(self._queries, n, self._budget)
        name = phase or self._phase
        out = self._answer_batch(x if self._access == "white" else x.detach(), name)
        self._queries += n
        self._by_phase[name] = self._by_phase.get(name, 0) + n
        self._log.append(QueryEvent(name, n, self._queries))
        return out

    def _answer_batch(self, x: torch.Tensor, phase: str) -> torch.Tensor:
        """The teacher's answers to one validated batch (``phase`` names it for a served teacher's accounting)."""
        return self._answer(x)

    def reset_counter(self) -> None:
        """Zero the query counter and log (the budget then applies afresh)."""
        self._queries = 0
        self._by_phase.clear()
        self._log.clear()
