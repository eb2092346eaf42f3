"""Runs a notebook makes beside `run_method`: committed bench records seed by seed, and notebook 07's ablation.

The notebooks call these so that the learner's view holds the experiment, not the plumbing (building a box, a
`RunContext`, a student): each function goes through labkit's public pieces, the same ones the runner uses.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import dataset_info, load_dataset
from labkit.core.errors import LabkitError
from labkit.core.metrics import accuracy
from labkit.core.profiles import Profile
from labkit.core.remote import teacher_box
from labkit.core.results import ResultRecord
from labkit.core.teachers import default_student_arch
from labkit.methods.base import RunContext, train_student
from labkit.methods.mekd import MEKDConfig, generated_transfer_set
from labkit.studies.bench import record_path
from labkit.studies.results_layout import BENCH, study_dir
from labkit.synthesis.deprivatisation import BOX_ACCESS

__all__ = ["GeneratedOnlyRun", "committed_records", "generated_only_run", "rarest_class_share"]


def committed_records(key: str, dataset: str = "fashion-mnist", profile: str = "laptop",
                      seeds: tuple[int, ...] = (0, 1, 2)) -> list[ResultRecord]:
    """The saved bench records of one row (``results/bench/<profile>/<dataset>/<key>-seed<s>.json``), by seed.

    Raises :class:`LabkitError` if one is missing: the laptop records ship with the lab.
    """
    folder = study_dir(BENCH, profile, dataset)
    out = []
    for seed in seeds:
        path = record_path(folder, key, seed)
        if not path.exists():
            raise LabkitError(f"{path} is missing: the committed {profile} bench records ship with the lab "
                              "(restore them with git, or rerun `python -m labkit bench`)")
        out.append(ResultRecord.from_dict(json.loads(path.read_text())))
    return out


def rarest_class_share(record: ResultRecord) -> tuple[int, float]:
    """The class the teacher named least often among a pseudo-sample run's noise draws, and its share of the draws.

    Reads ``extras["init_hits_per_class"]`` and ``extras["init_draws"]`` (ZSDB3KD's rejection sampling).
    """
    hits, draws = record.extras.get("init_hits_per_class"), record.extras.get("init_draws")
    if not isinstance(hits, list) or not hits or not isinstance(draws, int) or draws <= 0:
        raise LabkitError(f"{record.method} (seed {record.seed}) holds no noise-draw counts")
    rarest = min(range(len(hits)), key=lambda c: hits[c])
    return rarest, hits[rarest] / draws


@dataclass
class GeneratedOnlyRun:
    """A student distilled through a given frozen MEKD generator, on its samples only (no edge image)."""

    student: nn.Module
    test_acc: float
    distillation_queries: int  # the queries of the distillation phase only (the generator's own are not counted)
    box: BlackBox


def generated_only_run(generator: nn.Module, profile: Profile, dataset: str = "fashion-mnist", seed: int = 0,
                       device: torch.device | str | None = None, response: str = "soft") -> GeneratedOnlyRun:
    """MEKD's paper ingredient alone (``ingredients=("generated",)``) through ``generator``, which is not retrained.

    A fresh box at the response's access level answers G's samples, and the student is trained by
    :func:`labkit.methods.base.train_student`, whose epoch selection uses a teacher-labelled holdout of generated
    images. Evaluation comes afterwards, as in the runner.
    """
    info = dataset_info(dataset)
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    cfg = MEKDConfig.for_profile(profile, ingredients=("generated",), response=response)
    box = teacher_box(dataset, access=BOX_ACCESS[response], device=dev)  # the served teacher in class mode
    transfer = generated_transfer_set(box, generator, info.num_classes, cfg, seed=seed, progress=False)
    ctx = RunContext(profile, seed, dev, default_student_arch(dataset), info, progress=False)
    student, _ = train_student(transfer, ctx)
    test = load_dataset(dataset, "test", device=dev)
    return GeneratedOnlyRun(student, accuracy(student.eval(), test.x, test.y), box.queries, box)
