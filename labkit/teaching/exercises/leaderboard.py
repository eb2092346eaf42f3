"""Notebook 08's exercise: which methods are worth their queries? (the Pareto front)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from labkit.studies.leaderboard import pareto_front
from labkit.teaching.exercises import ExerciseResult, kind_to_learners, not_attempted

NAME = "Pareto front of accuracy against queries"


def _cases() -> list[tuple[str, list[float], list[float]]]:
    g = torch.Generator().manual_seed(8)
    cases = [
        ("a simple staircase", [10.0, 100.0, 1000.0], [0.5, 0.7, 0.9]),
        ("one method beaten on both counts", [10.0, 100.0, 1000.0], [0.8, 0.7, 0.9]),
        ("equal queries, different accuracy", [100.0, 100.0, 5000.0], [0.6, 0.8, 0.85]),
        ("equal accuracy, different queries", [100.0, 400.0, 5000.0], [0.8, 0.8, 0.85]),
        ("two identical points", [50.0, 50.0, 10.0], [0.7, 0.7, 0.4]),
        ("a single method", [1234.0], [0.42]),
    ]
    for k in range(4):
        n = 9
        q = (10 ** (torch.rand(n, generator=g) * 6)).round().tolist()
        a = (torch.rand(n, generator=g) * 0.5 + 0.4).round(decimals=2).tolist()
        if k == 3:  # force ties in both columns
            q[1], a[1] = q[0], a[0] - 0.05
            a[2] = a[3]
        cases.append((f"random leaderboard {k + 1}", q, a))
    return cases


@kind_to_learners(NAME)
def check_pareto_front(fn: Callable[[Sequence[float], Sequence[float]], Sequence[int] | None]) -> ExerciseResult:
    """Check ``fn(queries, accuracy)`` returns the indices no other method beats (≤ queries and ≥ accuracy,
    one of them strictly), in any order."""
    msgs = []
    for name, q, a in _cases():
        got = fn(list(q), list(a))
        if got is None:
            return not_attempted(NAME)
        try:
            got_set = sorted(int(i) for i in got)
        except (TypeError, ValueError):
            return ExerciseResult(NAME, False, True, ["Return a list of integer indices into the inputs."]).report()
        want = sorted(pareto_front(q, a))
        if got_set != want:
            extra = sorted(set(got_set) - set(want))
            lost = sorted(set(want) - set(got_set))
            hint = []
            if extra:
                hint.append(f"{extra} are beaten by another method (as few or fewer queries and as good or better "
                            "accuracy, one strictly)")
            if lost:
                hint.append(f"{lost} are on the front but missing (nothing beats them; a tie is not a defeat)")
            msgs.append(f"{name}: queries {q}, accuracy {a}: got {got_set}, expected {want}. " + "; ".join(hint))
            break
    if msgs:
        return ExerciseResult(NAME, False, True, msgs).report()
    return ExerciseResult(NAME, True, True, [f"Matches labkit.studies.leaderboard.pareto_front on {len(_cases())} "
                                             "leaderboards, ties included."]).report()
