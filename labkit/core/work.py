"""What a run will do, counted before it runs: the cost model's input (:mod:`labkit.studies.cost` times it).

A method lists its work with :meth:`~labkit.methods.base.DistillationMethod.work`: a tuple of :class:`Work`, each one
kind of step (a box call, a crafting step, a student step, a generator step, a boundary-search iteration) at one
batch size, and how many times the run takes it. The counts come from the run's config alone; where the real count
depends on what the teacher answers (rejection sampling, a search that stops early), the method counts the most the
config allows and says so in ``note``. The kinds are :data:`WORK_KINDS`; ``params`` name the models and sizes the
calibration builds (e.g. the generator's width).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: kind -> what one step of it is (the cost module builds and times each on the real models)
WORK_KINDS: dict[str, str] = {
    "box": "one box call of `batch` images (the teacher's forward, the box's checks and counting)",
    "craft": "one white-box crafting step of `batch` impressions (forward, input gradient, Adam on the pixels)",
    "train": "one training step of a classifier (`arch`) on `batch` images (forward, loss, backward, Adam)",
    "eval": "one no-grad forward of a classifier (`arch`) on `batch` images",
    "gan": "one MEKD GAN step on `batch` latents (G, D on real and fake, G's update, one box call)",
    "g-forward": "one no-grad forward of MEKD's generator on `batch` latents",
    "align": "one MEKD student step on `batch` images: the logits through the frozen G and the KL, backward, Adam",
    "ideal-g": "one IDEAL generator step on `batch` latents (G, crop and flip, the frozen guide, Adam)",
    "cvae": "one FS-BBT CVAE training step on `batch` images",
    "search": "one iteration of ZSDB3KD's boundary search and step for `batch` pseudo-samples",
    "distance": "DB3KD's boundary distances of `batch` images to every other class",
    "noise": "drawing `batch` noise images of one family (`family`) before they go to the box",
    "augment": "ZSKD's authors' augmentations of `batch` impressions (`per_step` copies of each; 0: all of them)",
}


@dataclass(frozen=True)
class Work:
    """``steps`` repetitions of one kind of step at ``batch`` images, counted in ``phase``."""

    phase: str
    kind: str
    steps: float
    batch: int
    params: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in WORK_KINDS:
            raise ValueError(f"unknown work kind {self.kind!r}; the kinds are {', '.join(WORK_KINDS)}")
        if self.steps < 0 or self.batch < 1:
            raise ValueError(f"{self.phase}: steps must be >= 0 and batch >= 1 (got {self.steps}, {self.batch})")

    @property
    def options(self) -> dict[str, Any]:
        """``params`` as a dict."""
        return dict(self.params)

    @property
    def images(self) -> float:
        """Images through this work in all (steps × batch)."""
        return self.steps * self.batch


def params(**values: Any) -> tuple[tuple[str, Any], ...]:
    """``Work.params`` from keywords, in a stable order."""
    return tuple(sorted(values.items()))


def box_work(phase: str, images: float, call_batch: int | None = None, note: str = "") -> Work:
    """``images`` box queries in calls of ``call_batch`` (default: all of them in one call)."""
    images = max(0.0, float(images))
    batch = max(1, int(call_batch if call_batch else max(images, 1)))
    return Work(phase, "box", images / batch, batch, note=note)


def fit_work(phase: str, rows: int, epochs: int, batch_size: int, arch: str, selection_rows: int,
             extra_per_step: tuple[Work, ...] = ()) -> tuple[Work, ...]:
    """What :func:`~labkit.core.train.fit` does: ``epochs`` passes over ``rows`` in steps of ``batch_size`` and one
    evaluation of the selection split after every epoch; ``extra_per_step`` run once per training step (their
    ``steps`` are per step)."""
    steps = epochs * math.ceil(max(rows, 1) / batch_size)
    out = [Work(phase, "train", steps, min(batch_size, max(rows, 1)), params(arch=arch))]
    if selection_rows:
        out.append(Work(phase, "eval", epochs, selection_rows, params(arch=arch)))
    out += [Work(w.phase, w.kind, w.steps * steps, w.batch, w.params, w.note) for w in extra_per_step]
    return tuple(out)


@dataclass(frozen=True)
class WorkPlan:
    """A run's work: the method's own (``method``) and the reported student's training (``student``)."""

    method: tuple[Work, ...]
    student: tuple[Work, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def all(self) -> tuple[Work, ...]:
        """Every work item, the method's first."""
        return self.method + self.student
