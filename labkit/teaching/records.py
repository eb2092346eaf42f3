"""The committed records as the notebooks read them: the laptop leaderboard and its rows seed by seed.

A notebook that quotes a committed figure reads it here and ties it with
``labkit.teaching.prose.committed_figure`` (DEVELOPING.md, "Notebooks").
"""
from __future__ import annotations

from labkit.core.errors import BenchError
from labkit.studies.leaderboard import Leaderboard, saved_leaderboard
from labkit.studies.results_layout import BENCH, study_dir


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
