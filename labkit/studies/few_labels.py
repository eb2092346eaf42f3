"""Few labelled images: the student alone against plain KD over training-set sizes (notebook 01's regime).

With every labelled image, KD barely moves a LeNet-5-half student (the committed board has it slightly below the
student alone). With a few hundred labelled images, the teacher's probabilities carry what the labels cannot. This
module runs both bench rows (``student`` and ``kd``) on seeded, class-balanced subsets of the training split,
``sizes`` × ``seeds``, through the bench's plan and runs (records saved as they finish, reused when they match) into
``<results>/few-labels/<profile>/<dataset>/n<size>/``, and reads them back for notebook 01's plot.

Every size trains on about the same number of images (``IMAGES_SEEN``, 120,000 on the laptop profile: epochs =
⌈IMAGES_SEEN / n⌉, at least the profile's), so small sets are not simply under-trained. Both rows choose their
epoch on the validation split (5,000 labelled images, the same for every size; a real few-label user would hold
out fewer); the test split is reported only.
Regenerate: ``python -m labkit few-labels --profile laptop --seeds 0 1 2``.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core import paths
from labkit.core.data import canonical_name
from labkit.core.errors import LabkitError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.studies.bench import execute_bench, plan_bench, record_path
from labkit.studies.results_layout import FEW_LABELS, study_dir

__all__ = ["FEW_LABEL_ROWS", "FEW_LABEL_SIZES", "IMAGES_SEEN", "SHIPPED_SUMMARY", "FewLabelPoint", "board_full_rows",
           "epochs_for", "few_labels_dir", "load_few_labels", "reference_few_labels", "run_few_labels",
           "write_shipped_summary"]

FEW_LABEL_SIZES: tuple[int, ...] = (500, 2000, 8000)
FEW_LABEL_ROWS: tuple[str, ...] = ("student", "kd")
#: training images seen per run at every size, per profile (laptop: about 940 steps of 128)
IMAGES_SEEN: dict[str, int] = {"smoke": 500, "laptop": 120_000, "gpu": 240_000, "paper": 240_000}


@dataclass(frozen=True)
class FewLabelPoint:
    """One (row, size): test accuracy over seeds, and what the run cost."""

    row: str
    size: int
    accs: tuple[float, ...]
    queries: int
    epochs: int

    @property
    def mean(self) -> float:
        """Mean test accuracy over seeds."""
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return statistics.stdev(self.accs) if len(self.accs) > 1 else 0.0


def epochs_for(size: int, profile_epochs: int, profile: str = "laptop") -> int:
    """Epochs for a training set of ``size`` images: ⌈IMAGES_SEEN[profile] / size⌉, at least the profile's."""
    return max(int(profile_epochs), math.ceil(IMAGES_SEEN[get_profile(profile).name] / max(1, int(size))))


def few_labels_dir(out_dir: str | Path | None = None, profile: str = "laptop", dataset: str = "fashion-mnist") -> Path:
    """``<results>/few-labels/<profile>/<dataset>/``: one record per size, row and seed, at
    ``n<size>/<row>-seed<k>.json`` (``out_dir``: the results folder, default :func:`labkit.core.paths.results_dir`)."""
    return study_dir(FEW_LABELS, get_profile(profile).name, canonical_name(dataset), out_dir)


def _size_dir(base: Path, size: int) -> Path:
    return base / f"n{int(size)}"


def run_few_labels(sizes: Sequence[int] = FEW_LABEL_SIZES, seeds: Sequence[int] = (0, 1, 2), *,
                   profile: str = "laptop", dataset: str = "fashion-mnist", out_dir: str | Path | None = None,
                   force: bool = False, progress: bool = True) -> list[FewLabelPoint]:
    """Run ``student`` and ``kd`` on ``n`` labelled images for every ``n`` in ``sizes`` and seed; return the points."""
    from labkit.methods.kd import StudentConfig

    prof = get_profile(profile)
    base = few_labels_dir(out_dir, prof.name, dataset)
    log = print if progress else None
    for n in sizes:
        if int(n) < 10:
            raise LabkitError(f"a training set of {n} images cannot hold every class; use sizes of 10 or more")
        epochs = epochs_for(n, StudentConfig.for_profile(prof, canonical_name(dataset)).epochs, prof.name)
        extra = {"train_limit": int(n), "epochs": epochs}
        runs = plan_bench(dataset, prof.name, seeds, _size_dir(base, n), entries=list(FEW_LABEL_ROWS), force=force,
                          overrides={row: dict(extra) for row in FEW_LABEL_ROWS}, log=log)
        execute_bench(runs, progress=progress, log=log)
    points = load_few_labels(prof.name, dataset, out_dir, sizes=sizes, seeds=seeds)
    if (prof.name, canonical_name(dataset), out_dir) == ("laptop", "fashion-mnist", None) \
            and sorted(sizes) == sorted(FEW_LABEL_SIZES) and sorted(seeds) == [0, 1, 2] \
            and os.access(SHIPPED_SUMMARY.parent, os.W_OK):  # a clone, not a read-only installed package
        from labkit.studies.leaderboard import saved_leaderboard

        board = saved_leaderboard("fashion-mnist", "laptop")
        if board is not None:  # the committed study: refresh the summary the package ships
            write_shipped_summary(points, board_full_rows(board))
    return points


def load_few_labels(profile: str = "laptop", dataset: str = "fashion-mnist", out_dir: str | Path | None = None, *,
                    sizes: Sequence[int] = FEW_LABEL_SIZES, seeds: Sequence[int] = (0, 1, 2)) -> list[FewLabelPoint]:
    """The saved records as points (rows × sizes); a missing record is an error that names the command to run."""
    prof = get_profile(profile)
    dataset = canonical_name(dataset)
    base = few_labels_dir(out_dir, prof.name, dataset)
    points = []
    for row in FEW_LABEL_ROWS:
        for n in sizes:
            recs = []
            for seed in seeds:
                path = record_path(_size_dir(base, n), row, seed)
                if not path.exists():
                    raise LabkitError(f"no few-label record {path}. Run: python -m labkit few-labels --profile "
                                      f"{prof.name} --dataset {dataset} --sizes {' '.join(map(str, sizes))} "
                                      f"--seeds {' '.join(map(str, seeds))}")
                recs.append(ResultRecord.from_dict(json.loads(path.read_text())))
            points.append(FewLabelPoint(row, int(n), tuple(r.student_acc for r in recs), recs[0].queries,
                                        int(str(recs[0].options.get("epochs", 0)))))
    return points


#: The committed laptop study, summarised inside the package so a wheel installed outside the clone has it too.
SHIPPED_SUMMARY = paths.SHIPPED_DIR / "few_labels_laptop_fashion-mnist.json"


def write_shipped_summary(points: Sequence[FewLabelPoint], full: dict[str, tuple[float, float, int]],
                          path: Path = SHIPPED_SUMMARY) -> Path:
    """Write the laptop study (and the full-data rows of the committed board) to the package's summary file."""
    doc = {"profile": "laptop", "dataset": "fashion-mnist", "images_seen": IMAGES_SEEN["laptop"],
           "command": "python -m labkit few-labels --profile laptop --seeds 0 1 2",
           "points": [{"row": p.row, "size": p.size, "accs": list(p.accs), "queries": p.queries,
                       "epochs": p.epochs} for p in points],
           "full": {row: {"mean": m, "std": s, "size": n} for row, (m, s, n) in full.items()}}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def board_full_rows(board: Any) -> dict[str, tuple[float, float, int]]:
    """``{row: (mean, std, training images)}`` of the ``student`` and ``kd`` rows of a leaderboard."""
    out = {}
    for row in FEW_LABEL_ROWS:
        e = board.entry(row)
        if e.student_acc is not None and e.transfer_set_size is not None:
            out[row] = (e.student_acc.mean, e.student_acc.std or 0.0, int(e.transfer_set_size.mean))
    return out


def reference_few_labels() -> tuple[list[FewLabelPoint], dict[str, tuple[float, float, int]]]:
    """The committed laptop study on Fashion-MNIST (3 seeds) and the full-data rows: from ``results/`` in a clone,
    else from the summary shipped inside the package."""
    from labkit.studies.leaderboard import saved_leaderboard

    try:
        points = load_few_labels("laptop", "fashion-mnist")
        board = saved_leaderboard("fashion-mnist", "laptop")
        if board is not None:
            return points, board_full_rows(board)
    except LabkitError:
        pass
    if not SHIPPED_SUMMARY.exists():
        raise LabkitError(f"neither results/few-labels nor {SHIPPED_SUMMARY} exists. Run: python -m labkit "
                          "few-labels --profile laptop --seeds 0 1 2")
    doc = json.loads(SHIPPED_SUMMARY.read_text())
    points = [FewLabelPoint(p["row"], int(p["size"]), tuple(p["accs"]), int(p["queries"]), int(p["epochs"]))
              for p in doc["points"]]
    return points, {row: (v["mean"], v["std"], int(v["size"])) for row, v in doc["full"].items()}
