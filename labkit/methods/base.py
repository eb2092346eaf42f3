"""The common interface of every distillation method, and the runner that enforces the boundary.

A method is a :class:`DistillationMethod` subclass registered with
:func:`register_method`. Its :meth:`~DistillationMethod.distill` receives only

* a :class:`~labkit.blackbox.BlackBox` at the method's access level (never the teacher),
* the :class:`MethodData` its data access allows (labeled, unlabeled or none), and
* a :class:`RunContext` (profile, seed, device, a factory for fresh students).

:func:`run_method` builds all of that, times the run, evaluates the student on the
test split (test accuracy and student–teacher agreement, outside the method), and
returns a :class:`MethodRun` holding the :class:`~labkit.results.ResultRecord`.
"""
from __future__ import annotations

import argparse
import importlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..blackbox import BlackBox
from ..data import DatasetInfo, LabeledTensors, balanced_indices, canonical_name, dataset_info, load_dataset
from ..device import pick_device, seed_everything
from ..errors import UnknownNameError
from ..models import model_for
from ..profiles import Profile, get_profile
from ..results import ResultRecord
from ..teachers import default_student_arch, default_teacher_arch, get_teacher
from ..train import accuracy, agreement

DATA_ACCESS = ("labeled", "unlabeled", "none")


@dataclass
class MethodData:
    """The data a method may see. Fields its data access does not allow are ``None``."""

    info: DatasetInfo
    train: LabeledTensors | None = None  # labeled training images ("labeled" methods)
    unlabeled: torch.Tensor | None = None  # training images without labels ("unlabeled" methods)
    val: LabeledTensors | None = None  # labeled validation split ("labeled" methods)
    #: few-shot methods: ``balanced_subset(n)`` gives seeded, class-balanced indices into ``unlabeled``
    #: (the runner picks them from the hidden labels; the labels themselves are never handed over)
    balanced_subset: Callable[[int], torch.Tensor] | None = None


@dataclass
class RunContext:
    """Profile, seed, device and a student factory shared by every method."""

    profile: Profile
    seed: int
    device: torch.device
    student_arch: str
    info: DatasetInfo
    progress: bool = True

    def new_student(self, seed_offset: int = 0) -> nn.Module:
        """A freshly initialised student on the device (seeded)."""
        torch.manual_seed(self.seed + seed_offset)
        return model_for(self.student_arch, self.info).to(self.device)


@dataclass
class DistillOutput:
    """What a method hands back: the trained student plus facts for the record and the notebooks."""

    student: nn.Module
    transfer_set_size: int
    val_acc: float | None = None
    selection: str = "validation split"
    history: list[dict[str, float]] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)  # JSON-friendly, goes into the record
    artifacts: dict[str, Any] = field(default_factory=dict)  # tensors for plots; not saved


class DistillationMethod(ABC):
    """Base class: set ``name``, ``access``, ``data_access`` and implement :meth:`distill`."""

    name: ClassVar[str] = ""
    access: str = "score"  # decision | score | white | none (no teacher at all)
    data_access: ClassVar[str] = "labeled"
    summary: ClassVar[str] = ""
    companions: ClassVar[tuple[str, ...]] = ()  # methods the CLI runs beside this one (e.g. baselines)

    def __init__(self, **options: Any) -> None:
        self.options = {k: v for k, v in options.items() if v is not None}

    @property
    def label(self) -> str:
        """The name used in result records (a variant may add a suffix, e.g. ``mekd-hard``)."""
        return self.name

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this method's own command-line options (default: none)."""

    @abstractmethod
    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> DistillOutput:
        """Build a transfer set through ``box`` and train a student; never touch the teacher otherwise."""


METHODS: dict[str, type[DistillationMethod]] = {}
#: name -> module under labkit.methods that registers it (imported on first use)
METHOD_MODULES: dict[str, str] = {
    "student": "kd", "kd": "kd", "db3kd": "db3kd", "zskd": "zskd", "zsdb3kd": "zsdb3kd",
    "fsbbt": "fsbbt", "mekd": "mekd", "kd-edge": "mekd",
}


def register_method(cls: type[DistillationMethod]) -> type[DistillationMethod]:
    """Class decorator that adds a method to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError("a registered method needs a name")
    if cls.data_access not in DATA_ACCESS:
        raise ValueError(f"data_access must be one of {DATA_ACCESS}")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of every method the lab knows."""
    return sorted(set(METHOD_MODULES) | set(METHODS))


def get_method(name: str) -> type[DistillationMethod]:
    """The method class registered as ``name`` (imports its module on first use)."""
    key = name.strip().lower().replace("_", "-")
    if key not in METHODS and key in METHOD_MODULES:
        try:
            importlib.import_module(f"labkit.methods.{METHOD_MODULES[key]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"labkit.methods.{METHOD_MODULES[key]}":
                raise UnknownNameError("method (not yet implemented)", name, sorted(METHODS)) from exc
            raise
    if key not in METHODS:
        raise UnknownNameError("method", name, available_methods())
    return METHODS[key]


@dataclass
class MethodRun:
    """A finished run: its record, the trained student, the box (query log) and plot artefacts."""

    record: ResultRecord
    student: nn.Module
    box: BlackBox | None
    output: DistillOutput

    @property
    def artifacts(self) -> dict[str, Any]:
        """Tensors and figures' data the method left for notebooks."""
        return self.output.artifacts


def method_data(info: DatasetInfo, data_access: str, device: torch.device, seed: int,
                train_limit: int | None = None) -> MethodData:
    """Load exactly the data a method's data access allows."""
    if data_access == "none":
        return MethodData(info)
    train = load_dataset(info.name, "train", device=device, limit=train_limit, seed=seed)
    if data_access == "unlabeled":
        hidden_labels = train.y

        def balanced_subset(n: int) -> torch.Tensor:
            """Seeded, class-balanced indices of ``n`` unlabeled images (labels stay with the runner)."""
            return balanced_indices(hidden_labels, min(int(n), len(hidden_labels)), seed).to(device)

        return MethodData(info, unlabeled=train.x, balanced_subset=balanced_subset)
    return MethodData(info, train=train, val=load_dataset(info.name, "val", device=device))


def run_method(name: str, *, dataset: str = "fashion-mnist", profile: str | Profile | None = None, seed: int = 0,
               device: torch.device | str | None = None, teacher_arch: str | None = None,
               student_arch: str | None = None, budget: int | None = None, progress: bool = True,
               out: str | Path | None = None, train_limit: int | None = None,
               box_hook: Callable[[BlackBox], None] | None = None, **options: Any) -> MethodRun:
    """Run one method end to end on the lab's cached teacher and return a :class:`MethodRun`.

    ``budget`` caps the teacher queries (a :class:`~labkit.errors.QueryBudgetExceeded`
    stops the run). ``options`` go to the method's constructor.
    """
    cls = get_method(name)
    method = cls(**options)
    prof = get_profile(profile)
    dev = torch.device(device) if device is not None else pick_device()
    dataset = canonical_name(dataset)
    info = dataset_info(dataset)
    teacher_arch = teacher_arch or default_teacher_arch(dataset)
    student_arch = student_arch or default_student_arch(dataset)
    teacher = get_teacher(dataset, teacher_arch, device=dev, progress=progress)
    limit = train_limit if train_limit is not None else prof.train_limit
    data = method_data(info, cls.data_access, dev, seed, limit)
    box = None
    if method.access != "none":
        box = BlackBox(teacher.model, access=method.access, budget=budget, input_shape=info.image_shape,
                       num_classes=info.num_classes, device=dev)
        if box_hook is not None:
            box_hook(box)
    ctx = RunContext(prof, seed, dev, student_arch, info, progress)
    seed_everything(seed)
    start = time.perf_counter()
    output = method.distill(box, data, ctx)
    wall = time.perf_counter() - start
    test = load_dataset(dataset, "test", device=dev)
    student = output.student.eval()
    record = ResultRecord(
        method=method.label,
        access=method.access, dataset=dataset, teacher_arch=teacher_arch, student_arch=student_arch,
        teacher_acc=teacher.test_acc, student_acc=accuracy(student, test.x, test.y),
        agreement=agreement(student, teacher.model, test.x), queries=box.queries if box else 0,
        transfer_set_size=int(output.transfer_set_size), wall_s=round(wall, 2), device=str(dev),
        profile=prof.name, seed=seed, val_acc=output.val_acc, selection=output.selection,
        queries_by_phase=box.queries_by_phase if box else {}, options=dict(method.options),
        extras=dict(output.extras),
    )
    if out is not None:
        record.save(out)
    return MethodRun(record, student, box, output)
