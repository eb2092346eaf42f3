"""Notebook 08's exercise: which methods are worth their queries? (the Pareto front)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from labkit.studies.leaderboard import pareto_front
from labkit.teaching.exercises import ExerciseResult, Slip, find_slip, kind_to_learners, not_attempted

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


def _front(queries: Sequence[float], accuracy: Sequence[float], beats: Callable[..., torch.Tensor]) -> list[int]:
    """Indices of the points no other point beats, for a rule ``beats(q_other, a_other, q_self, a_self)``."""
    q, a = torch.tensor(queries, dtype=torch.float64), torch.tensor(accuracy, dtype=torch.float64)
    beaten = beats(q[None, :], a[None, :], q[:, None], a[:, None]) & ~torch.eye(len(q), dtype=torch.bool)
    return torch.nonzero(~beaten.any(dim=1)).flatten().tolist()


def _slips() -> list[Slip]:
    """The Pareto front's typical wrong answers, each with the advice that names it."""
    def beaten_ones(q: Sequence[float], a: Sequence[float]) -> list[int]:
        return sorted(set(range(len(q))) - set(pareto_front(q, a)))

    return [
        Slip("Those are the beaten methods: return the ones nobody beats.", beaten_ones),
        Slip("Return the indices of the unbeaten methods (e.g. [0, 2]), not a True/False mask over all of them.",
             lambda q, a: [int(i in pareto_front(q, a)) for i in range(len(q))]),
        Slip("A tie is not a defeat: a method is beaten only by one that is as good on both counts and strictly "
             "better on one, so two identical points both stay.",
             lambda q, a: _front(q, a, lambda qo, ao, qs, as_: (qo <= qs) & (ao >= as_))),
        Slip("Strictly better on *one* count is enough: a method with as few queries and higher accuracy (or "
             "fewer queries and the same accuracy) beats it.",
             lambda q, a: _front(q, a, lambda qo, ao, qs, as_: (qo < qs) & (ao > as_))),
        Slip("Fewer queries is better: a method is beaten by one with ≤ queries and ≥ accuracy (one strictly).",
             lambda q, a: _front(q, a, lambda qo, ao, qs, as_: (qo >= qs) & (ao >= as_) & ((qo > qs) | (ao > as_)))),
        Slip("Higher accuracy is better: a method is beaten by one with ≤ queries and ≥ accuracy (one strictly).",
             lambda q, a: _front(q, a, lambda qo, ao, qs, as_: (qo <= qs) & (ao <= as_) & ((qo < qs) | (ao < as_)))),
    ]


def _same_indices(got: Sequence[int], want: Sequence[int]) -> bool:
    return sorted(int(i) for i in got) == sorted(int(i) for i in want)


@kind_to_learners(NAME)
def check_pareto_front(fn: Callable[[Sequence[float], Sequence[float]], Sequence[int] | None]) -> ExerciseResult:
    """Check ``fn(queries, accuracy)`` returns the indices no other method beats (≤ queries and ≥ accuracy,
    one of them strictly), in any order."""
    cases, answers = _cases(), []
    for _, q, a in cases:
        got = fn(list(q), list(a))
        if got is None:
            return not_attempted(NAME)
        try:
            answers.append([int(i) for i in got])
        except (TypeError, ValueError):
            return ExerciseResult(NAME, False, True, ["Return a list of integer indices into the inputs."]).report()
    for (name, q, a), got in zip(cases, answers):
        want = sorted(pareto_front(q, a))
        if sorted(got) == want:
            continue
        slip = find_slip(_slips(), [(q, a) for _, q, a in cases], answers, _same_indices)
        extra, lost = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        found = []
        if extra:
            found.append(f"{extra} are beaten by another method")
        if lost:
            found.append(f"{lost} are on the front but missing")
        hint = slip.advice if slip else ("A method is beaten when another has as few or fewer queries and as good or "
                                         "better accuracy, one of them strictly; a tie is not a defeat.")
        return ExerciseResult(NAME, False, True, [f"{name}: queries {q}, accuracy {a}: got {sorted(got)}, expected "
                                                  f"{want} ({'; '.join(found)}). {hint}"]).report()
    return ExerciseResult(NAME, True, True, [f"Matches labkit.studies.leaderboard.pareto_front on {len(cases)} "
                                             "leaderboards, ties included."]).report()
