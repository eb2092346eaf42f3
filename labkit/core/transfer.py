"""The typed transfer set every method hands to the runner, and the one function that trains a student on it.

A method's :meth:`~labkit.methods.base.DistillationMethod.distill` builds a :class:`TransferSet`:

* ``x``: the training images, one row each;
* ``targets``: row-aligned tensors; the first is of :attr:`TransferSet.target_kind` (see
  :data:`TARGET_KINDS`), any further ones are what the loss also takes (e.g. true labels);
* ``loss``: an instance of a loss registered in :mod:`labkit.core.losses`;
* ``holdout``: a teacher-labelled ``(images, class ids)`` pair for selecting the epoch (data-free and
  unlabeled-data methods), or ``None`` for "the labelled validation split" (with-data methods);
* ``source`` and ``ingredients``: per-row provenance. ``source[i]`` is the index in ``ingredients`` of the
  :class:`Ingredient` that produced row ``i``; every ingredient names the box phases whose queries it cost;
* ``recipe``: epochs, batch size, learning rate and the optional per-batch augmentation or hook.

:func:`labkit.methods.base.train_student` is the only place in the lab where a student is trained.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from labkit.core.errors import ConfigError
from labkit.core.losses import registered_name
from labkit.core.train import Augment, BatchHook

#: what the first target tensor holds
TARGET_KINDS: dict[str, str] = {
    "probabilities": "the teacher's probability vectors (N×C), possibly softened at a temperature",
    "class-ids": "class ids (N,), int64: the teacher's top-1 answers or true labels",
    "logits": "the teacher's raw logits (N×C)",
    "distance-soft-labels": "soft labels computed from distances to the teacher's decision boundaries (N×C)",
}


@dataclass
class Ingredient:
    """One named part of a transfer set: how many distinct rows it gave and which box phases it cost."""

    name: str
    phases: tuple[str, ...] = ()  # box phases (``with box.phase(...)``) whose queries this ingredient cost
    rows: int | None = None  # distinct training rows (None: counted from ``TransferSet.source``)
    holdout_rows: int = 0  # rows of this ingredient in the selection holdout
    queries: int = 0  # filled by the runner from ``phases`` once the run is over

    def as_record(self) -> dict[str, int]:
        """``{"rows", "holdout_rows", "queries"}`` for the result record."""
        return {"rows": int(self.rows or 0), "holdout_rows": int(self.holdout_rows), "queries": int(self.queries)}


@dataclass
class TrainRecipe:
    """How the runner trains the student on a transfer set."""

    epochs: int
    batch_size: int
    lr: float
    seed_offset: int = 0  # the student's initialisation and shuffling use ``seed + seed_offset``
    augment: Augment | None = None  # per-batch input augmentation (labels unchanged)
    batch_hook: BatchHook | None = None  # per-batch hook that may change inputs and targets (e.g. online MixUp)
    desc: str = "student"  # progress-bar label


@dataclass
class TransferSet:
    """What a method built: images, typed targets, loss, selection holdout and per-row provenance."""

    x: torch.Tensor
    targets: tuple[torch.Tensor, ...]
    target_kind: str
    loss: nn.Module
    recipe: TrainRecipe
    ingredients: list[Ingredient]
    source: torch.Tensor | None = None  # (N,) index into ``ingredients``; None: every row is ingredients[0]
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None  # teacher-labelled (x, class ids); None: validation split
    selection: str = "validation split"
    extras: dict[str, Any] = field(default_factory=dict)  # JSON-friendly facts for the record
    artifacts: dict[str, Any] = field(default_factory=dict)  # tensors and objects for the notebooks; not saved

    def __post_init__(self) -> None:
        if isinstance(self.targets, torch.Tensor):
            self.targets = (self.targets,)
        n = int(self.x.shape[0])
        if n == 0:
            raise ConfigError("the transfer set is empty: every ingredient produced no rows; switch one on "
                              "or raise its size")
        if self.target_kind not in TARGET_KINDS:
            raise ConfigError(f"unknown target kind {self.target_kind!r}; use one of {sorted(TARGET_KINDS)}")
        for t in self.targets:
            if int(t.shape[0]) != n:
                raise ConfigError(f"a target tensor has {t.shape[0]} rows but the transfer set has {n} images")
        self.loss_name = registered_name(self.loss)  # refuses losses outside the registry
        if not self.ingredients:
            raise ConfigError("a transfer set needs at least one named ingredient")
        names = [i.name for i in self.ingredients]
        if len(set(names)) != len(names):
            raise ConfigError(f"ingredient names repeat: {names}")
        claimed = [p for i in self.ingredients for p in i.phases]
        if len(set(claimed)) != len(claimed):
            raise ConfigError(f"a box phase is claimed by two ingredients: {claimed}")
        if self.source is None:
            self.source = torch.zeros(n, dtype=torch.long, device=self.x.device)
        if int(self.source.shape[0]) != n:
            raise ConfigError(f"source has {self.source.shape[0]} rows but the transfer set has {n} images")
        counts = torch.bincount(self.source.long().cpu(), minlength=len(self.ingredients)).tolist()
        if len(counts) > len(self.ingredients):
            raise ConfigError("source points at an ingredient that is not listed")
        for ing, count in zip(self.ingredients, counts):
            if ing.rows is None:
                ing.rows = int(count)
        if self.holdout is not None and int(self.holdout[0].shape[0]) == 0:
            raise ConfigError("the selection holdout is empty; raise the holdout fraction")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def size(self) -> int:
        """The transfer-set size the lab reports: distinct training rows, holdout excluded."""
        return int(sum(int(i.rows or 0) for i in self.ingredients))

    @property
    def holdout_size(self) -> int:
        """Rows in the teacher-labelled holdout (0 when the validation split selects)."""
        return 0 if self.holdout is None else int(self.holdout[0].shape[0])

    def ingredient_names(self) -> list[str]:
        """The ingredients in order."""
        return [i.name for i in self.ingredients]

    def count_queries(self, queries_by_phase: dict[str, int]) -> None:
        """Fill every ingredient's ``queries`` from the box's per-phase counts."""
        for ing in self.ingredients:
            ing.queries = int(sum(queries_by_phase.get(p, 0) for p in ing.phases))

