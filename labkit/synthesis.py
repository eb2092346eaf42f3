"""One interface for every data-free transfer set.

A :class:`Synthesizer` turns teacher queries into a transfer set. ``synthesize(n)``
returns a :class:`SynthesisResult`: the images, their targets (soft labels or class
ids), and snapshots taken along the way (for "from noise to sample" plots). Every
synthesised image is kept in a bank that :meth:`Synthesizer.sample` draws from.

ZSKD (Data Impressions), ZSDB3KD (pseudo-samples) and MEKD (a generator) all
build their transfer sets through this class.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from .blackbox import BlackBox


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
    """Base class: subclasses implement :meth:`_synthesize`; the base keeps the bank."""

    def __init__(self, box: BlackBox, seed: int = 0) -> None:
        self.box = box
        self.seed = seed
        self._bank_x: list[torch.Tensor] = []
        self._bank_t: list[torch.Tensor] = []

    @abstractmethod
    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        """Make ``n`` new samples."""

    def synthesize(self, n: int, *, progress: bool = True) -> SynthesisResult:
        """Make ``n`` samples through the box, add them to the bank and return them."""
        if n <= 0:
            raise ValueError("synthesize(n) needs n >= 1")
        result = self._synthesize(n, progress)
        if result.images.shape[0] != result.targets.shape[0]:
            raise RuntimeError("a synthesizer returned images and targets of different lengths")
        if not bool(torch.isfinite(result.images).all()):
            from .errors import NonFiniteError

            raise NonFiniteError("synthesis produced NaN or infinite images; lower the step size or learning rate")
        self._bank_x.append(result.images.detach())
        self._bank_t.append(result.targets.detach())
        return result

    @property
    def bank_size(self) -> int:
        """How many samples have been synthesised so far."""
        return sum(x.shape[0] for x in self._bank_x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random (image, target) pairs from everything synthesised so far."""
        if not self._bank_x:
            raise RuntimeError("nothing synthesised yet: call synthesize(n) first")
        x, t = torch.cat(self._bank_x), torch.cat(self._bank_t)
        idx = torch.randint(0, x.shape[0], (n,), generator=generator).to(x.device)
        return x[idx], t[idx]
