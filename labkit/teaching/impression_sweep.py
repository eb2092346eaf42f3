"""Students on fewer impressions (notebook 04): the accuracy-against-size curve of a finished ZSKD run.

Each point takes the first share of the run's impressions (balanced over classes and β, as crafted), builds the
transfer set the method builds (``impression_transfer_set``: the same holdout and relabelled copies) and trains a
student with ``train_student``, the runner's one training path. No impression is crafted again; only the copies of
each subset are relabelled, through the run's own box, so their queries are counted there.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labkit.core.data import LabeledTensors, dataset_info
from labkit.core.metrics import accuracy
from labkit.core.profiles import get_profile
from labkit.methods.base import RunContext, train_student
from labkit.methods.zskd import ZSKDConfig, impression_transfer_set
from labkit.studies.runner import MethodRun


@dataclass(frozen=True)
class SweepPoint:
    """One student of the sweep: how many impressions it used, its training rows and its test accuracy."""

    impressions: int
    rows: int
    student_acc: float


def fewer_impressions(run: MethodRun, cfg: ZSKDConfig, fractions: Sequence[float], test: LabeledTensors, *,
                      min_impressions: int = 20) -> list[SweepPoint]:
    """Train one student per fraction of ``run``'s impressions; the test split only reports each one."""
    rec = run.record
    if run.box is None:
        raise ValueError("the ZSKD run has no box: the copies of each subset must be relabelled through it")
    synth = run.artifacts["synthesis"]
    device = next(run.student.parameters()).device
    ctx = RunContext(get_profile(rec.profile), rec.seed, device, rec.student_arch, dataset_info(rec.dataset),
                     progress=False)
    points = []
    for fraction in fractions:
        n = max(min_impressions, int(fraction * len(synth)))
        subset = impression_transfer_set(run.box, synth.images[:n], synth.targets[:n], cfg, seed=rec.seed,
                                         desc=f"{n} impressions")
        student, _ = train_student(subset, ctx)
        points.append(SweepPoint(n, subset.size, accuracy(student, test.x, test.y)))
    return points
