"""Reading a finished leaderboard: the Pareto front, the cost of one difference, ladder steps, accuracy per decade.

:func:`cost_comparisons` prices the pairs of rows held beside the rows (:data:`labkit.studies.bench_rows.COST_PAIRS`);
:func:`access_costs` reads its interface pairs in words (does poorer access cost queries, accuracy, or neither?);
:func:`ladder_steps` sets each row against its method's paper row. Nothing here runs a method.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from labkit.core.errors import BenchError
from labkit.studies.bench_rows import COST_PAIRS
from labkit.studies.board import Leaderboard


def pareto_front(queries: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: none has ≤ queries and ≥ accuracy with one strictly better.

    Sorted by queries (then by accuracy, descending). Identical points are all kept.
    """
    q = torch.tensor([float(v) for v in queries], dtype=torch.float64)
    a = torch.tensor([float(v) for v in accuracy], dtype=torch.float64)
    if q.shape != a.shape:
        raise ValueError("queries and accuracy need the same length")
    no_worse = (q[None, :] <= q[:, None]) & (a[None, :] >= a[:, None])  # [i, j]: j is no worse than i
    better = (q[None, :] < q[:, None]) | (a[None, :] > a[:, None])
    dominated = (no_worse & better).any(dim=1)
    keep = [int(i) for i in torch.nonzero(~dominated).flatten()]
    return sorted(keep, key=lambda i: (float(q[i]), -float(a[i])))


@dataclass
class CostComparison:
    """Two rows that differ in one thing (the teacher's interface, or the data), and what that costs."""

    question: str
    better: str
    worse: str
    acc_gap: float  # better − worse, accuracy points as a fraction
    query_ratio: float | None  # worse queries / better queries (None if either is zero)

    def sentence(self) -> str:
        """One line for the notebook."""
        qr = "" if self.query_ratio is None else \
            f"; {self.worse} sent {self.query_ratio:.3g}× the queries of {self.better}"
        return f"{self.question} — {self.better} minus {self.worse}: {100 * self.acc_gap:+.2f} accuracy points{qr}."


def cost_comparisons(board: Leaderboard) -> list[CostComparison]:
    """The :data:`COST_PAIRS` whose two rows were both measured, as accuracy gaps and query ratios."""
    rows = {e.key: e for e in board.measured()}
    out = []
    for pair in COST_PAIRS:
        question, a, b = pair.question, pair.more, pair.less
        if a in rows and b in rows:
            ea, eb = rows[a], rows[b]
            qa, qb = ea.queries.mean, eb.queries.mean  # type: ignore[union-attr]
            ratio = qb / qa if qa > 0 and qb > 0 else None
            gap = ea.student_acc.mean - eb.student_acc.mean  # type: ignore[union-attr]
            out.append(CostComparison(question, a, b, gap, ratio))
    return out


#: two rows whose query counts differ by less than this factor spend "the same queries"
SAME_QUERIES = 1.1


@dataclass
class AccessCost:
    """One interface pair (richer vs poorer access, all else equal) read in words: what the poorer access costs."""

    question: str
    richer: str  # the row with more access (e.g. a score box)
    poorer: str  # the row with less (e.g. a decision box)
    poorer_access: str
    acc_gap: float  # richer − poorer, accuracy as a fraction
    spread: float  # the larger of the two rows' standard deviations over seeds (a fraction)
    query_ratio: float  # poorer queries / richer queries

    @property
    def costs_queries(self) -> bool:
        """The poorer access sent more queries than the richer one (by at least :data:`SAME_QUERIES`)."""
        return self.query_ratio >= SAME_QUERIES

    @property
    def costs_accuracy(self) -> bool:
        """The poorer access ends lower by more than the seeds' spread."""
        return self.acc_gap > self.spread

    def sentence(self) -> str:
        """The pair in words: queries, accuracy, and the verdict."""
        r, gap, spread = self.query_ratio, 100 * self.acc_gap, 100 * self.spread
        if self.costs_queries:
            queries = f"the {self.poorer_access} box sent {r:.3g}× the queries"
        elif r > 1 / SAME_QUERIES:
            queries = "the same queries either way"
        else:
            queries = f"the {self.poorer_access} box sent fewer queries ({r:.2g}×)"
        if self.costs_accuracy:
            acc = f"{self.poorer} ends {gap:.1f} points lower (more than the seeds' spread, ±{spread:.1f})"
        elif -gap > spread:
            acc = f"{self.poorer} ends {-gap:.1f} points higher (more than the seeds' spread, ±{spread:.1f})"
        else:
            acc = f"the accuracies differ by {abs(gap):.1f} points, within the seeds' spread (±{spread:.1f})"
        verdict = {(True, True): "here less access costs queries and accuracy",
                   (True, False): "here less access is paid for in queries",
                   (False, True): "here less access costs accuracy, not queries",
                   (False, False): "here less access costs nothing measurable"}[self.costs_queries, self.costs_accuracy]
        topic = self.question.split(": ", 1)[-1]
        return f"{topic} ({self.richer} vs {self.poorer}): {queries}, and {acc}: {verdict}."


def access_costs(board: Leaderboard) -> list[AccessCost]:
    """The interface pairs of :data:`COST_PAIRS` (questions starting ``interface:``) whose rows were both measured and
    both query the teacher, read as :class:`AccessCost`."""
    rows = {e.key: e for e in board.measured()}
    out = []
    for pair in COST_PAIRS:
        if not pair.question.startswith("interface:") or pair.more not in rows or pair.less not in rows:
            continue
        rich, poor = rows[pair.more], rows[pair.less]
        q_rich, q_poor = rich.queries.mean, poor.queries.mean  # type: ignore[union-attr]
        if q_rich <= 0 or q_poor <= 0:
            continue
        gap = rich.student_acc.mean - poor.student_acc.mean  # type: ignore[union-attr]
        spread = max(rich.student_acc.std or 0.0, poor.student_acc.std or 0.0)  # type: ignore[union-attr]
        out.append(AccessCost(pair.question, pair.more, pair.less, poor.access, gap, spread, q_poor / q_rich))
    return out


#: a ladder step gets an accuracy-per-decade rate only when it costs at least this many times the paper row's queries
DECADE_MIN_RATIO = 2.0


@dataclass
class LadderStep:
    """One rung of a method's ladder against the paper's mechanism alone: what it adds, at what query cost."""

    family: str
    paper: str  # the family's paper row
    row: str
    rung: str
    acc_gap: float  # row − paper row, accuracy as a fraction
    query_ratio: float | None  # row queries / paper-row queries (None if either is zero)

    @property
    def points_per_decade(self) -> float | None:
        """Accuracy points per factor of ten in queries over the paper row; None unless the row costs at least
        :data:`DECADE_MIN_RATIO` times the paper row's queries (near 1× the ratio divides by almost zero)."""
        if self.query_ratio is None or self.query_ratio < DECADE_MIN_RATIO:
            return None
        return 100 * self.acc_gap / math.log10(self.query_ratio)

    def sentence(self) -> str:
        """One line for the notebook: the gap, the query ratio, and the per-decade rate where it means something."""
        gap = f"{100 * self.acc_gap:+.2f} points over {self.paper}"
        head = f"{self.row} ({self.rung}): {gap}"
        r = self.query_ratio
        if r is None:
            return f"{head}; one of the two asks the teacher nothing."
        per = self.points_per_decade
        if per is not None:
            return f"{head} at {r:.3g}× its queries: {per:+.2f} points per factor of ten in queries."
        if abs(r - 1.0) < 0.005:
            return f"{head} at the same number of queries."
        if r >= 1.0:
            return (f"{head} for {100 * (r - 1):.0f}% more queries (under a third of a factor of ten: the change "
                    "is a matter of ingredients, not of query budget).")
        better = " — better and cheaper" if self.acc_gap > 0 else ""
        return f"{head} with {r:.2f}× its queries{better}."


def ladder_steps(board: Leaderboard) -> list[LadderStep]:
    """Every measured row against its family's measured paper row on the same teacher: the first ``paper`` rung
    with the row's teacher and access level (MEKD's hard rows against ``mekd-hard-paper``; IDEAL's rows on the
    public code's CNN against ``ideal-cnn``), else the first with its teacher, else the family's first."""
    out = []
    for family, rows in board.ladders().items():
        papers = [e for e in rows if e.rung == "paper" and e.measured]
        if not papers:
            continue
        for e in rows:
            same_teacher = [p for p in papers if p.teacher_arch == e.teacher_arch] or papers
            same_access = [p for p in same_teacher if p.access == e.access]
            base = same_access[0] if same_access else same_teacher[0]
            if e is base or not e.measured:
                continue
            qa, qb = base.queries.mean, e.queries.mean  # type: ignore[union-attr]
            ratio = qb / qa if qa > 0 and qb > 0 else None
            out.append(LadderStep(family, base.key, e.key, e.rung,
                                  e.student_acc.mean - base.student_acc.mean, ratio))  # type: ignore[union-attr]
    return out


def accuracy_per_decade(board: Leaderboard, baseline: str = "student") -> dict[str, float]:
    """Accuracy gained over ``baseline`` per decade (×10) of teacher queries, for rows that query.

    ``(acc − acc_baseline) / log10(queries)``: how much each factor of ten in queries buys.
    """
    base = board.entry(baseline)
    if not base.measured:
        raise BenchError(f"the baseline {baseline!r} was not measured")
    out = {}
    for e in board.measured():
        q = e.queries.mean  # type: ignore[union-attr]
        if q > 1:
            out[e.key] = (e.student_acc.mean - base.student_acc.mean) / math.log10(q)  # type: ignore[union-attr]
    return out
