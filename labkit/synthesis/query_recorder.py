"""A decision box that also keeps what it is asked: every query comes back as a teacher-labelled image.

ZSDB3KD's ``noise-bank`` ingredient sends its noise draws through a :class:`QueryRecorder` and trains
the student on a class-balanced draw of them (:meth:`QueryRecorder.balanced`), at no extra query.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from labkit.core.blackbox import BlackBox


class BalancedDraw(NamedTuple):
    """A class-balanced draw from a :class:`QueryRecorder` (float32 images, teacher class ids)."""

    x: torch.Tensor
    y: torch.Tensor
    holdout_x: torch.Tensor
    holdout_y: torch.Tensor
    distinct: int  # distinct images among ``x`` (a rare class is drawn with replacement)


class QueryRecorder:
    """Calls the wrapped :class:`~labkit.core.blackbox.BlackBox` (which counts every image, as always) and keeps
    every queried image with the teacher's answer.

    Images are stored on the CPU in half precision (within ~1e-3 of the queried point per pixel).
    Attribute access (``device``, ``queries``, ``phase``...) goes to the box.
    """

    def __init__(self, box: BlackBox) -> None:
        self.box = box
        self._x: list[torch.Tensor] = []
        self._y: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        if name == "box":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.box, name)

    def __call__(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out = self.box(x, **kwargs)
        if x.shape[0] > 0:
            self._x.append(x.detach().to("cpu", torch.float16))
            self._y.append(out.detach().cpu())
        return out

    def __len__(self) -> int:
        return sum(int(y.numel()) for y in self._y)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every kept ``(image (float16, CPU), teacher class)``."""
        if not self._y:
            return torch.zeros((0,) + tuple(self.box.input_shape or ())), torch.zeros(0, dtype=torch.int64)
        self._x, self._y = [torch.cat(self._x)], [torch.cat(self._y)]
        return self._x[0], self._y[0]

    def balanced(self, per_class: int, num_classes: int, seed: int = 0, holdout_per_class: int = 0) -> BalancedDraw:
        """A class-balanced :class:`BalancedDraw`: training and holdout images with their classes.

        Per class, up to ``holdout_per_class`` kept images (at most half of that class's) are set aside
        first; then ``per_class`` training images are drawn from the rest, without replacement where
        there are enough, with replacement where not.
        """
        x, y = self.tensors()
        gen = torch.Generator().manual_seed(seed)
        train_idx, hold_idx = [], []
        distinct = 0
        for c in range(num_classes):  # a loop over classes, not samples
            members = (y == c).nonzero().squeeze(1)
            members = members[torch.randperm(members.numel(), generator=gen)]
            h = min(holdout_per_class, members.numel() // 2)
            hold_idx.append(members[:h])
            rest = members[h:]
            if rest.numel() == 0 or per_class <= 0:
                continue
            train_idx.append(rest[:per_class] if rest.numel() >= per_class
                             else rest[torch.randint(rest.numel(), (per_class,), generator=gen)])
            distinct += min(per_class, rest.numel())
        tr = torch.cat(train_idx) if train_idx else torch.zeros(0, dtype=torch.int64)
        ho = torch.cat(hold_idx) if hold_idx else torch.zeros(0, dtype=torch.int64)
        return BalancedDraw(x[tr].float(), y[tr], x[ho].float(), y[ho], distinct)
