"""The common interface of every distillation method.

A method is a :class:`DistillationMethod` subclass registered with :func:`register_method`.
Its settings are a :class:`~labkit.core.config.MethodConfig` (``config_class``). Its
:meth:`~DistillationMethod.distill` receives only

* a :class:`~labkit.core.blackbox.BlackBox` at the method's access level (never the teacher),
* the :class:`MethodData` its data access allows (labeled, unlabeled or none), and
* a :class:`RunContext` (profile, seed, device, a factory for fresh students),

and returns a :class:`~labkit.core.transfer.TransferSet`. The runner (:mod:`labkit.studies.runner`) trains
the student on it with :func:`train_student`, the one place a student is trained, and evaluates it.
This package never imports the teacher cache.

Every ``distill`` first passes :meth:`DistillationMethod.check_box`, the one access guard: a box at any
other level than the method's ``access`` (or no box) is refused before the method runs. ``@register_method`` is
the only registry; ``labkit/methods/__init__.py`` imports every method module, so they are all registered once
``labkit.methods`` is imported.
"""
from __future__ import annotations

import argparse
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from labkit.core.blackbox import ACCESS_LEVELS, BlackBox
from labkit.core.config import MethodConfig
from labkit.core.data import DatasetInfo, LabeledTensors
from labkit.core.errors import AccessDenied, ConfigError, UnknownNameError
from labkit.core.models import model_for
from labkit.core.profiles import Profile
from labkit.core.train import FitResult, fit
from labkit.core.transfer import TransferSet
from labkit.core.work import Work, WorkPlan, fit_work

CfgT = TypeVar("CfgT", bound=MethodConfig)

DATA_ACCESS = ("labeled", "unlabeled", "none")
#: a transfer set's artifact: name -> the weights, in order (rounds, epochs), of another student of the run's
#: architecture that a paper reports instead of the lab's (IDEAL's round-trained one). The runner reports each one's
#: last and best test accuracy beside the honest figure; nothing chooses from them
REPORTED_STUDENTS = "reported_students"
#: a transfer set's extra: the precision its synthesis loops actually ran in, where a method sets it apart from the
#: run's (IDEAL's g_precision); the runner puts it in the record's synthesis_precision instead of the run's
SYNTHESIS_PRECISION = "synthesis_precision"
#: what a box at each access level gives a method (for the access guard's message)
BOX_GIVES = {"decision": "top-1 class ids only: the method must never see probabilities",
             "score": "the teacher's probability vectors",
             "white": "white-box access: the teacher's weights and gradients"}


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
    precision: str = "auto"  # the run's precision (run_method's precision=): auto, fp32 or bf16

    @property
    def synthesis_precision(self) -> str:
        """``bf16`` for the synthesis loops (generator and crafting steps) only when asked for; ``fp32`` otherwise."""
        return "bf16" if self.precision == "bf16" else "fp32"

    def new_student(self, seed_offset: int = 0) -> nn.Module:
        """A freshly initialised student on the device (seeded)."""
        torch.manual_seed(self.seed + seed_offset)
        return model_for(self.student_arch, self.info).to(self.device)


class DistillationMethod(ABC, Generic[CfgT]):
    """Base class: set ``name``, ``access``, ``data_access``, ``config_class`` and implement :meth:`distill`."""

    name: ClassVar[str] = ""
    access: str = "score"  # decision | score | white | none (no teacher at all)
    data_access: ClassVar[str] = "labeled"
    summary: ClassVar[str] = ""
    companions: ClassVar[tuple[str, ...]] = ()  # methods the CLI runs beside this one (e.g. baselines)
    #: profiles where the box's teacher is compiled on the CPU: only where the run sends enough images for the
    #: compile time (about 7 s) to pay back (about 1.1 million images on two cores; docs/speed.md)
    compile_teacher_profiles: ClassVar[tuple[str, ...]] = ()
    config_class: type[CfgT]  # the method's settings: a MethodConfig with per-profile tables

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own :meth:`distill` is wrapped so that :meth:`check_box` runs before it."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("distill")
        if own is not None:
            cls.distill = _guarded(own)  # type: ignore[method-assign]

    def __init__(self, **options: Any) -> None:
        self.options = {k: v for k, v in options.items() if v is not None}
        valid = self.config_class.field_names()
        for key in self.options:
            if key not in valid:
                raise UnknownNameError(self.config_class.TITLE, key, valid)

    @property
    def label(self) -> str:
        """The name used in result records (a variant may add a suffix, e.g. ``mekd-hard``)."""
        return self.name

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> list[str]:
        """Add this method's command-line options, generated from its config fields."""
        return cls.config_class.add_arguments(parser)

    def config(self, ctx: RunContext) -> CfgT:
        """This run's settings: the profile's table with this method's options."""
        return self.config_class.for_profile(ctx.profile, ctx.info.name, **self.options)

    def check_box(self, box: BlackBox | None) -> None:
        """The access guard: refuse (:class:`AccessDenied`) a box whose level is not this method's ``access``.

        ``access`` may be set per instance (MEKD's ``response``); ``"none"`` takes whatever it is given.
        """
        if self.access == "none" or (box is not None and box.access == self.access):
            return
        got = "no teacher at all" if box is None else f"a {box.access!r} box"
        raise AccessDenied(f"{self.label} needs a {self.access!r} box ({BOX_GIVES[self.access]}); it was given "
                           f"{got}. Build it with BlackBox(model, access={self.access!r}) (run_method does), or "
                           "pick a method for the box you have (python -m labkit methods lists each one's access).")

    @abstractmethod
    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Build the transfer set through ``box`` (never the teacher otherwise); the runner trains the student."""

    def after_training(self, transfer: TransferSet, student: nn.Module, fit: FitResult, box: BlackBox | None,
                       data: MethodData, ctx: RunContext) -> None:
        """Optional: add facts to ``transfer.extras``/``artifacts`` once the student is trained (default: nothing)."""

    def work(self, cfg: CfgT, info: DatasetInfo, student_arch: str, train_rows: int) -> WorkPlan:
        """What a run with ``cfg`` will do, counted from the config alone (:mod:`labkit.methods.work_plans`): the cost
        model's input. ``train_rows`` is how many training images a with-data method is given."""
        if self.name not in WORK_PLANS:
            raise ConfigError(f"{self.label} does not count its work (no plan in labkit.methods.work_plans), so the "
                              "lab cannot estimate its time; run it without an estimate, or add its plan")
        return WORK_PLANS[self.name](self, cfg, info, student_arch, train_rows)


#: a method's work plan: (method, config, data set, student architecture, training images) -> its WorkPlan
WorkPlanFn = Callable[[Any, Any, DatasetInfo, str, int], WorkPlan]
#: method name -> its work plan (registered by :mod:`labkit.methods.work_plans`)
WORK_PLANS: dict[str, WorkPlanFn] = {}


def student_work(cfg: Any, rows: int, selection_rows: int, student_arch: str,
                 extra_per_step: tuple[Work, ...] = ()) -> tuple[Work, ...]:
    """The reported student's training (:func:`train_student`) on ``rows`` with the config's recipe."""
    return fit_work("student", rows, cfg.epochs, cfg.batch_size, student_arch, selection_rows, extra_per_step)


def _guarded(distill: Callable[..., TransferSet]) -> Callable[..., TransferSet]:
    """``distill`` with the method's access guard (:meth:`DistillationMethod.check_box`) in front."""
    @functools.wraps(distill)
    def guarded(self: DistillationMethod[Any], box: BlackBox | None, *args: Any, **kwargs: Any) -> TransferSet:
        self.check_box(box)
        return distill(self, box, *args, **kwargs)

    return guarded


def train_student(transfer: TransferSet, ctx: RunContext,
                  val: LabeledTensors | tuple[torch.Tensor, torch.Tensor] | None = None,
                  keep_epoch_states: bool = False) -> tuple[nn.Module, FitResult]:
    """Train a fresh student on ``transfer``: the one place in the lab where a student is trained.

    The epoch is selected on the transfer set's teacher-labelled holdout, or on ``val`` (the labelled
    validation split) when the transfer set has none. The test split is never an argument here;
    ``keep_epoch_states`` keeps every epoch's weights for the runner's papers'-protocol figure, computed after the
    method is done.
    """
    holdout = transfer.holdout if transfer.holdout is not None else val
    if holdout is None:
        raise ConfigError(f"{transfer.recipe.desc}: no selection split. A method without labelled data must give "
                          "its transfer set a teacher-labelled holdout; a with-data method gets the validation split.")
    r = transfer.recipe
    student = ctx.new_student(seed_offset=r.seed_offset)
    result = fit(student, transfer.x, transfer.targets, transfer.loss, val=holdout, epochs=r.epochs,
                 batch_size=r.batch_size, lr=r.lr, device=ctx.device, seed=ctx.seed + r.seed_offset,
                 augment=r.augment, batch_hook=r.batch_hook, progress=ctx.progress, desc=r.desc,
                 keep_epoch_states=keep_epoch_states)
    return student, result


METHODS: dict[str, type[DistillationMethod]] = {}


def register_method(cls: type[DistillationMethod]) -> type[DistillationMethod]:
    """Class decorator that adds a method to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError("a registered method needs a name")
    if cls.data_access not in DATA_ACCESS:
        raise ValueError(f"data_access must be one of {DATA_ACCESS}")
    if cls.access not in (*ACCESS_LEVELS, "none"):
        raise ValueError(f"access must be one of {(*ACCESS_LEVELS, 'none')}")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of every method the lab knows."""
    return sorted(METHODS)


def get_method(name: str) -> type[DistillationMethod]:
    """The method class registered as ``name`` (case, spaces and ``_`` for ``-`` are forgiven)."""
    key = name.strip().lower().replace("_", "-")
    if key not in METHODS:
        raise UnknownNameError("method", name, available_methods())
    return METHODS[key]
