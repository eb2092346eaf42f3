"""One interface for every data-free transfer set.

A :class:`Synthesizer` turns teacher queries into images for a transfer set. ``synthesize(n)``
returns a :class:`SynthesisResult`: the images, their targets (soft labels or class
ids), and snapshots taken along the way (for "from noise to sample" plots). Synthesis is
kept apart from training: the method wraps the result in a :class:`~labkit.core.transfer.TransferSet`.

Every synthesizer takes its own frozen settings dataclass, defined beside it (``ImpressionSettings``,
``PseudoSampleSettings``, ``GANSettings``, ``RoundSettings``, ``MixUpSettings``, ``CVAESettings``); a method's
config builds them (:func:`settings_from` copies the fields that share a name). No synthesizer reads a method's
config.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import torch

from labkit.core.blackbox import BlackBox
from labkit.core.errors import AccessDenied, NonFiniteError

SettingsT = TypeVar("SettingsT")


def settings_from(settings_class: type[SettingsT], config: object, **values: Any) -> SettingsT:
    """A synthesizer's settings (a dataclass) from a method's ``config``: each settings field the config has under
    the same name is copied; ``values`` give the others (a renamed field, or a flag derived from the ingredients)."""
    shared = {f.name: getattr(config, f.name) for f in fields(settings_class)  # type: ignore[arg-type]
              if f.name not in values and hasattr(config, f.name)}
    return settings_class(**shared, **values)


@dataclass
class Snapshot:
    """The images (a fixed subset) at one step of the synthesis."""

    step: int
    images: torch.Tensor  # k×C×H×W on the CPU
    labels: torch.Tensor | None = None  # the class each image is being pushed toward


@dataclass
class SynthesisResult:
    """A synthesised transfer set plus its history."""

    images: torch.Tensor
    targets: torch.Tensor  # N×C probabilities, or N class ids
    snapshots: list[Snapshot] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])


class Synthesizer(ABC):
    """Base class: subclasses implement :meth:`_synthesize`; the base checks what comes back."""

    def __init__(self, box: BlackBox, seed: int = 0, *, device: torch.device | str | None = None,
                 decision_only: str | None = None) -> None:
        """``device``: where samples are made (default: the box's). ``decision_only``: the method's name, for a
        decision-based synthesizer that refuses any other box."""
        if decision_only is not None and box.access != "decision":
            raise AccessDenied(f"{decision_only} is the decision-based method; it needs a 'decision' box, "
                               f"got {box.access!r}.")
        self.box = box
        self.seed = seed
        self.device = torch.device(device) if device is not None else box.device

    @abstractmethod
    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        """Make ``n`` new samples."""

    def synthesize(self, n: int, *, progress: bool = True) -> SynthesisResult:
        """Make ``n`` samples through the box and return them (checked: equal lengths, finite pixels)."""
        if n <= 0:
            raise ValueError("synthesize(n) needs n >= 1")
        result = self._synthesize(n, progress)
        if result.images.shape[0] != result.targets.shape[0]:
            raise RuntimeError("a synthesizer returned images and targets of different lengths")
        if not bool(torch.isfinite(result.images).all()):
            raise NonFiniteError("synthesis produced NaN or infinite images; lower the step size or learning rate")
        return result
