"""The runner: builds the black box and the data a method may see, lets the method build its transfer
set, trains the student (:func:`labkit.methods.base.train_student`), evaluates it on the test split and
fills the :class:`~labkit.core.results.ResultRecord`.

Only this module (and :mod:`labkit.core.teachers`) touches the teacher and the test split; methods see the box.
"""
from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import torch
from torch import nn

from labkit.core.blackbox import BlackBox, resolve_precision
from labkit.core.data import DatasetInfo, balanced_indices, canonical_name, dataset_info, load_dataset
from labkit.core.device import pick_device, seed_everything
from labkit.core.errors import ConfigError
from labkit.core.metrics import accuracy, predict_logits
from labkit.core.profiles import Profile, get_profile
from labkit.core.remote import TOKEN_ENV, CourseClient, RemoteBlackBox, served_teacher
from labkit.core.results import ResultRecord
from labkit.core.teachers import Teacher, default_student_arch, default_teacher_arch, get_teacher
from labkit.core.train import FitResult
from labkit.core.transfer import TransferSet
from labkit.methods.base import (
    REPORTED_STUDENTS,
    SYNTHESIS_PRECISION,
    DistillationMethod,
    MethodData,
    RunContext,
    get_method,
    train_student,
)
from labkit.studies.cost import Estimate, estimate_run


@dataclass
class MethodRun:
    """A finished run: its record, the trained student, the box (query log), the transfer set and the fit."""

    record: ResultRecord
    student: nn.Module
    box: BlackBox | None
    transfer: TransferSet
    fit: FitResult

    @property
    def artifacts(self) -> dict[str, Any]:
        """Tensors and figures' data the method left for notebooks."""
        return self.transfer.artifacts

    @property
    def history(self) -> list[dict[str, float]]:
        """The student's per-epoch training history."""
        return self.fit.history


def method_data(info: DatasetInfo, data_access: str, device: torch.device, seed: int,
                train_limit: int | None = None) -> MethodData:
    """Load exactly the data a method's data access allows (never the test split)."""
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


def compiles_teacher(cls: type[DistillationMethod[Any]], profile: str, device: torch.device,
                     paper_fraction: dict[str, Any] | None = None) -> bool:
    """Whether a run compiles its box's teacher: on the CPU, at a profile the method names in
    ``compile_teacher_profiles``, at full size (a scaled paper-check run sends too few images to pay back)."""
    return device.type == "cpu" and profile in cls.compile_teacher_profiles and not paper_fraction


#: the teacher's classes on a test split, per teacher weights (a fingerprint of them) and device: every run in a
#: process (a bench, the tests) evaluates against the same teacher, and its 10,000 forward passes need doing once
_TEACHER_TEST_CLASSES: dict[tuple[object, ...], torch.Tensor] = {}


def _fingerprint(model: nn.Module) -> tuple[float, float]:
    """Two sums over every weight (plain and position-weighted): equal weights give equal prints."""
    flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in model.state_dict().values()
                      if p.is_floating_point()])
    ramp = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64)
    return float(flat.sum()), float((flat * ramp).sum())


def teacher_test_classes(teacher: Teacher, dataset: str, x: torch.Tensor) -> torch.Tensor:
    """The teacher's top-1 class on the test split ``x`` (computed once per teacher weights and device)."""
    key = (dataset, teacher.spec.arch, _fingerprint(teacher.model), str(x.device), tuple(x.shape))
    if key not in _TEACHER_TEST_CLASSES:
        if len(_TEACHER_TEST_CLASSES) >= 8:
            _TEACHER_TEST_CLASSES.clear()
        _TEACHER_TEST_CLASSES[key] = predict_logits(teacher.model, x).argmax(1)
    return _TEACHER_TEST_CLASSES[key]


def papers_protocol_accuracies(student: nn.Module, epoch_states: list[dict[str, torch.Tensor]], x: torch.Tensor,
                               y: torch.Tensor, known: tuple[dict[str, torch.Tensor], float] | None = None
                               ) -> list[float]:
    """Test accuracy of every epoch's weights, measured after the method and its student are done: the papers'
    best-test-epoch protocol, reported beside the honest figure and never used for a choice. ``known``: weights
    whose accuracy is already measured (the reported student's), not measured again."""
    probe = copy.deepcopy(student)
    accs = []
    for state in epoch_states:
        if known is not None and state.keys() == known[0].keys() and \
                all(torch.equal(state[k].cpu(), known[0][k].cpu()) for k in state):
            accs.append(known[1])
            continue
        probe.load_state_dict(state)
        accs.append(accuracy(probe, x, y))
    return accs


@overload
def run_method(name: str, *, dry_run: Literal[True], **kwargs: Any) -> Estimate: ...


@overload
def run_method(name: str, *, dataset: str = ..., profile: str | Profile | None = ..., seed: int = ...,
               device: torch.device | str | None = ..., teacher_arch: str | None = ...,
               student_arch: str | None = ..., budget: int | None = ..., progress: bool = ...,
               out: str | Path | None = ..., train_limit: int | None = ...,
               box_hook: Callable[[BlackBox], None] | None = ..., paper_fraction: dict[str, Any] | None = ...,
               precision: str = ..., dry_run: Literal[False] = ..., teacher_url: str | None = ...,
               token: str | None = ..., use_served: bool = ..., **options: Any) -> MethodRun: ...


def run_method(name: str, *, dataset: str = "fashion-mnist", profile: str | Profile | None = None, seed: int = 0,
               device: torch.device | str | None = None, teacher_arch: str | None = None,
               student_arch: str | None = None, budget: int | None = None, progress: bool = True,
               out: str | Path | None = None, train_limit: int | None = None,
               box_hook: Callable[[BlackBox], None] | None = None, paper_fraction: dict[str, Any] | None = None,
               precision: str = "auto", dry_run: bool = False, teacher_url: str | None = None,
               token: str | None = None, use_served: bool = True, **options: Any) -> Any:
    """Run one method end to end on the lab's cached teacher and return a :class:`MethodRun`.

    ``budget`` caps the teacher queries (a :class:`~labkit.core.errors.QueryBudgetExceeded` stops the run).
    ``options`` are the method's config fields (e.g. ``epochs=3``, ``ingredients=("impressions",)``);
    they are checked before the teacher is loaded. ``precision``: ``auto`` (fp32 on the CPU; the box in bf16
    on CUDA), ``fp32``, or ``bf16`` (the box and the synthesis loops under bf16 autocast; on the CPU only
    with AVX512-BF16 or AMX); the student always trains as :func:`~labkit.core.train.fit` decides.
    ``paper_fraction`` (from ``make paper-check``) goes into the record as it is: a run at less than its
    profile's size says so there. ``dry_run=True`` runs nothing and returns the cost model's
    :class:`~labkit.studies.cost.Estimate` of the run on this device (per phase; ``.describe()``).
    ``teacher_url``/``token`` (default ``LABKIT_TEACHER_URL``/``LABKIT_TOKEN``) run against a served teacher
    (:class:`~labkit.core.remote.RemoteBlackBox`): no weights are loaded, and the record's agreement is left to the
    server's grading. ``use_served=False`` runs on the lab's own teacher even then: a white-box method (ZSKD) needs
    the weights, which a served teacher never gives.
    """
    if dry_run:
        return estimate_run(name, dataset=dataset, profile=profile, device=device, teacher_arch=teacher_arch,
                            student_arch=student_arch, train_limit=train_limit, **options)
    cls = get_method(name)
    method: DistillationMethod[Any] = cls(**options)
    prof = get_profile(profile)
    dataset = canonical_name(dataset)
    info = dataset_info(dataset)
    method.config_class.for_profile(prof, dataset, **method.options)  # bad settings fail here, before any work
    dev = torch.device(device) if device is not None else pick_device()
    resolve_precision(precision, dev, "score")  # an unknown precision, or bf16 on a CPU without it, fails here
    teacher_arch = teacher_arch or default_teacher_arch(dataset)
    student_arch = student_arch or default_student_arch(dataset)
    served: tuple[str, str] | None = None
    if use_served:
        served = (teacher_url, token or os.environ.get(TOKEN_ENV, "")) if teacher_url else served_teacher()
    teacher = None if served else get_teacher(dataset, teacher_arch, device=dev, progress=progress)
    limit = train_limit if train_limit is not None else prof.train_limit
    data = method_data(info, cls.data_access, dev, seed, limit)
    box: BlackBox | None = None
    if served:  # class mode: the server's teacher, through the learner's token (docs/course.md)
        me = CourseClient(*served).json("GET", "/v1/me")
        if me["dataset"] != dataset:
            raise ConfigError(f"the course server serves a {me['dataset']} teacher, not {dataset}")
        teacher_arch, teacher_acc = str(me["teacher_arch"]), float(me["teacher_acc"])
        if method.access != "none":
            box = RemoteBlackBox(*served, access=method.access, budget=budget)
    elif method.access != "none" and teacher is not None:
        box = BlackBox(teacher.model, access=method.access, budget=budget, input_shape=info.image_shape,
                       num_classes=info.num_classes, device=dev, precision=precision,
                       compile_teacher=compiles_teacher(cls, prof.name, dev, paper_fraction))
    if box is not None and box_hook is not None:
        box_hook(box)
    ctx = RunContext(prof, seed, dev, student_arch, info, progress, precision)
    seed_everything(seed)
    start = time.perf_counter()
    transfer = method.distill(box, data, ctx)
    method_s = time.perf_counter() - start
    student, fit = train_student(transfer, ctx, val=data.val, keep_epoch_states=True)
    method.after_training(transfer, student, fit, box, data, ctx)
    wall = time.perf_counter() - start
    by_phase = box.queries_by_phase if box else {}
    transfer.count_queries(by_phase)
    test = load_dataset(dataset, "test", device=dev)
    student = student.eval()
    pred = predict_logits(student, test.x).argmax(1).to(test.y.device)  # one pass for accuracy and agreement
    student_acc = float((pred == test.y).float().mean())
    report = papers_protocol_accuracies(student, fit.epoch_states, test.x, test.y,
                                        known=(student.state_dict(), student_acc))
    for name, states in transfer.artifacts.get(REPORTED_STUDENTS, {}).items():  # type: ignore[union-attr]
        accs = papers_protocol_accuracies(student, states, test.x, test.y)
        transfer.extras.setdefault(REPORTED_STUDENTS, {})[name] = {  # type: ignore[index]
            "last_test_acc": accs[-1], "best_test_acc": max(accs), "best_at": accs.index(max(accs)) + 1,
            "steps": len(accs)}
    # a method may run its synthesis apart from the run's precision (IDEAL's g_precision): the record says which
    synthesis_precision = str(transfer.extras.pop(SYNTHESIS_PRECISION, ctx.synthesis_precision))
    record = ResultRecord(
        method=method.label,
        access=method.access, dataset=dataset, teacher_arch=teacher_arch, student_arch=student_arch,
        teacher_acc=teacher.test_acc if teacher else teacher_acc, student_acc=student_acc,
        # a served teacher's agreement is measured by the server, at submission (labkit.submit)
        agreement=float((pred == teacher_test_classes(teacher, dataset, test.x)).float().mean()) if teacher else None,
        queries=box.queries if box else 0,
        transfer_set_size=transfer.size, wall_s=round(wall, 2), device=str(dev),
        profile=prof.name, seed=seed, val_acc=fit.best_val_acc, selection=transfer.selection,
        queries_by_phase=by_phase, options=dict(method.options),
        ingredients={i.name: i.as_record() for i in transfer.ingredients},
        loss=transfer.loss_name, target_kind=transfer.target_kind, holdout_size=transfer.holdout_size,
        best_epoch=fit.best_epoch, calls=box.calls if box else 0,
        queries_per_call=round(box.queries / box.calls, 2) if box and box.calls else 0.0,
        box_precision=box.precision if box else "", synthesis_precision=synthesis_precision,
        method_s=round(method_s, 2), student_s=round(fit.seconds, 2), paper_fraction=dict(paper_fraction or {}),
        best_test_epoch_acc=max(report) if report else None,
        extras=dict(transfer.extras),
    )
    if out is not None:
        record.save(out)
    return MethodRun(record, student, box, transfer, fit)
