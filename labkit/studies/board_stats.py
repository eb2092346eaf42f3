"""The leaderboard's statistics: one :class:`Stat` per measure over seeds, and one :class:`EntrySummary` per row.

:func:`summarize_entry` turns a row's records (one per seed) into its summary: mean ± std of test accuracy,
agreement, queries, transfer-set size and wall time, the ingredients of the transfer set, and the papers' reported
figure beside them (from :mod:`labkit.studies.paper_figures`). The ``fmt_*`` helpers print a statistic for a table.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from labkit.core.results import ResultRecord
from labkit.studies.paper_figures import note_for, primary_figure

STAT_NAMES = ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s", "elapsed_s")


class EntrySpec(Protocol):
    """What a leaderboard row needs to know about a bench entry (:class:`labkit.studies.bench.BenchEntry` is one)."""

    @property
    def key(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def access(self) -> str: ...
    @property
    def data_access(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def rung(self) -> str: ...
    @property
    def note(self) -> str: ...
    def option_dict(self) -> dict[str, Any]: ...




@dataclass
class Stat:
    """Mean, sample standard deviation (``None`` below two values), range and the values themselves."""

    mean: float
    std: float | None
    min: float
    max: float
    n: int
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """Summarise ``values`` (at least one)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        std = float(t.std(correction=1)) if len(t) > 1 else None
        return cls(float(t.mean()), std, float(t.min()), float(t.max()), len(t), [float(v) for v in values])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stat:
        """Rebuild from :func:`dataclasses.asdict` output."""
        return cls(**{k: d[k] for k in ("mean", "std", "min", "max", "n", "values")})


@dataclass
class EntrySummary:
    """One leaderboard row: the measured statistics over seeds, and the reported figure beside them."""

    key: str
    method: str
    title: str
    options: dict[str, Any]
    status: str  # ok | partial | skipped
    access: str
    data_access: str
    seeds: list[int] = field(default_factory=list)
    student_acc: Stat | None = None
    agreement: Stat | None = None
    queries: Stat | None = None
    transfer_set_size: Stat | None = None
    wall_s: Stat | None = None  # the method's own time (distill and training), as the record measures it
    elapsed_s: Stat | None = None  # the whole run: loading, distilling, evaluating
    #: the papers' protocol (optimistic; never used for any choice): the best test accuracy over the epochs, over the
    #: seeds whose records carry it (None where none does: runs saved before records kept it)
    best_test_epoch_acc: Stat | None = None
    #: ingredient name -> mean {"rows", "holdout_rows", "queries"} over seeds; empty for runs saved before
    #: records named their ingredients
    ingredients: dict[str, dict[str, float]] = field(default_factory=dict)
    reported: dict[str, Any] | None = None  # paper_figures.ReportedFigure.to_dict(), label "reported"
    reported_note: str = ""
    note: str = ""  # why a row is partial or skipped
    family: str = ""  # the method's ladder, e.g. "zsdb3kd" (empty in files saved before ladders)
    rung: str = ""  # paper | baseline | addition | combined
    row_note: str = ""  # one line: what the row's transfer set holds
    teacher_arch: str = ""  # the teacher the runs distilled ("" in files saved before rows could name one)
    teacher_acc: float | None = None  # that teacher's test accuracy, as the runs recorded it
    student_arch: str = ""

    @property
    def measured(self) -> bool:
        """True when at least one seed ran."""
        return self.student_acc is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EntrySummary:
        """Rebuild from :meth:`to_dict` output (older files without ``ingredients`` load with none)."""
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for s in (*STAT_NAMES, "best_test_epoch_acc"):
            if kw.get(s) is not None:
                kw[s] = Stat.from_dict(kw[s])
        return cls(**kw)

    def ingredients_note(self) -> str:
        """``"labelled-data (50,000 rows, 50,000 queries)"``, one part per ingredient (mean over seeds)."""
        if not self.ingredients:
            return "not recorded (run saved before records named their ingredients)" if self.measured else "—"
        parts = []
        for name, ing in self.ingredients.items():
            rows = f"{ing.get('rows', 0):,.0f} rows"
            if ing.get("holdout_rows"):
                rows += f" + {ing['holdout_rows']:,.0f} holdout"
            parts.append(f"{name} ({rows}, {ing.get('queries', 0):,.0f} queries)")
        return "; ".join(parts)


def run_elapsed_s(run: dict[str, Any]) -> float:
    """A run's whole elapsed time as the bench measured it (its method wall time if unknown)."""
    bench = run.get("extras", {}).get("bench", {})
    return float(bench.get("elapsed_s", run["wall_s"])) if isinstance(bench, dict) else float(run["wall_s"])


def _mean_ingredients(records: Sequence[ResultRecord]) -> dict[str, dict[str, float]]:
    """Mean rows, holdout rows and queries per ingredient over the records that name it, in first-seen order."""
    names = list(dict.fromkeys(name for r in records for name in r.ingredients))
    out: dict[str, dict[str, float]] = {}
    for name in names:
        seen = [r.ingredients[name] for r in records if name in r.ingredients]
        out[name] = {k: sum(float(s.get(k, 0)) for s in seen) / len(seen) for k in ("rows", "holdout_rows", "queries")}
    return out


def summarize_entry(entry: EntrySpec, records: Sequence[ResultRecord], dataset: str, *, status: str | None = None,
                    note: str = "", options: dict[str, Any] | None = None) -> EntrySummary:
    """Aggregate one entry's records (one per seed) into an :class:`EntrySummary`."""
    fig = primary_figure(entry.key, dataset)
    summary = EntrySummary(
        key=entry.key, method=entry.method, title=entry.title,
        options=dict(options if options is not None else entry.option_dict()),
        status=status or ("ok" if records else "skipped"), access=entry.access, data_access=entry.data_access,
        reported=fig.to_dict() if fig else None, reported_note=note_for(entry.key, dataset), note=note,
        family=getattr(entry, "family", ""), rung=getattr(entry, "rung", ""), row_note=getattr(entry, "note", ""))
    if records:
        summary.seeds = [r.seed for r in records]
        summary.access = records[0].access
        summary.teacher_arch, summary.teacher_acc = records[0].teacher_arch, records[0].teacher_acc
        summary.student_arch = records[0].student_arch
        for name in STAT_NAMES[:-1]:
            setattr(summary, name, Stat.of([getattr(r, name) for r in records]))
        summary.elapsed_s = Stat.of([run_elapsed_s(r.to_dict()) for r in records])
        summary.ingredients = _mean_ingredients(records)
        protocol = [r.best_test_epoch_acc for r in records if r.best_test_epoch_acc is not None]
        summary.best_test_epoch_acc = Stat.of(protocol) if protocol else None
    return summary



def fmt_pct(s: Stat | None) -> str:
    """A fraction statistic in percent: ``81.00 ± 1.41``, ``81.00`` for one value, ``—`` for none."""
    if s is None:
        return "—"
    return f"{100 * s.mean:.2f} ± {100 * s.std:.2f}" if s.std is not None else f"{100 * s.mean:.2f}"


def fmt_int(s: Stat | None) -> str:
    """A count statistic: ``1,000 ± 50``, the mean alone when the values do not spread, ``—`` for none."""
    if s is None:
        return "—"
    if s.std is not None and s.std > 0:
        return f"{s.mean:,.0f} ± {s.std:,.0f}"
    return f"{s.mean:,.0f}"


def fmt_sec(s: Stat | None) -> str:
    """A seconds statistic: ``12.3 ± 0.4``, ``12.3`` for one value, ``—`` for none."""
    if s is None:
        return "—"
    return f"{s.mean:.1f} ± {s.std:.1f}" if s.std is not None else f"{s.mean:.1f}"
