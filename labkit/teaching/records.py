"""The committed records as the notebooks read them: the laptop leaderboard, its rows seed by seed, and the
scaling studies.

A notebook that quotes a committed figure reads it here and ties it with
``labkit.teaching.prose.committed_figure`` (DEVELOPING.md, "Notebooks").
"""
from __future__ import annotations

from labkit.core.errors import BenchError
from labkit.core.results import ResultRecord, load_records
from labkit.studies.leaderboard import Leaderboard, saved_leaderboard
from labkit.studies.results_layout import BENCH, study_dir
from labkit.studies.scale import ScalePoint, scale_dir, summarize_scale


def committed_leaderboard(dataset: str = "fashion-mnist", profile: str = "laptop") -> Leaderboard:
    """The committed leaderboard (``results/bench/<profile>/<dataset>/``); a clear error when it is not there."""
    board = saved_leaderboard(dataset, profile)
    if board is None:
        where = study_dir(BENCH, profile, dataset)
        raise BenchError(f"no committed leaderboard in {where}: it ships with a clone of the lab "
                         f"(python -m labkit bench --profile {profile} writes it again)")
    return board


def seed_accuracies(board: Leaderboard, row: str) -> dict[int, float]:
    """One leaderboard row's test accuracy per seed (fractions), by seed."""
    entry = board.entry(row)
    if entry.student_acc is None:
        raise BenchError(f"leaderboard row {row!r} has no test accuracy (status {entry.status!r})")
    return dict(zip(entry.seeds, entry.student_acc.values))


def committed_scale_study(row: str, dataset: str = "fashion-mnist", profile: str = "laptop") -> list[ScalePoint]:
    """A committed scaling study's grid points (``results/scale/<profile>/<dataset>/<row>/``), cheapest first; a
    clear error when the study is not there."""
    folder = scale_dir(row, profile, dataset)
    points = summarize_scale(row, profile, dataset) if folder.exists() else []
    if not points:
        raise BenchError(f"no committed scaling study in {folder}: it ships with a clone of the lab "
                         f"(python -m labkit scale {row} --grid ... writes it again)")
    return points


def committed_runs(row: str, dataset: str = "fashion-mnist", profile: str = "laptop") -> list[ResultRecord]:
    """The committed bench records of one leaderboard row, one per seed, by seed (their extras included)."""
    folder = study_dir(BENCH, profile, dataset)
    runs = [load_records(path)[0] for path in sorted(folder.glob(f"{row}-seed*.json"))]
    if not runs:
        raise BenchError(f"no committed runs of {row!r} in {folder}: they ship with a clone of the lab "
                         f"(python -m labkit bench --profile {profile} --only {row} writes them again)")
    return sorted(runs, key=lambda r: r.seed)
