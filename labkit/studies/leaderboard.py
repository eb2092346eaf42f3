"""The leaderboard table: per-entry statistics over seeds, its JSON schema, its Markdown, and its analysis.

A :class:`Leaderboard` holds one :class:`EntrySummary` per bench entry (mean ± std of test accuracy,
agreement, queries, transfer-set size and wall time over seeds, the ingredients of the transfer set, and
the papers' reported figure beside them, from :mod:`labkit.studies.paper_figures`), every run's record, and the
machine, device and library versions (:func:`environment_info`). :meth:`Leaderboard.save` writes
``leaderboard.json`` (checked by :func:`validate_leaderboard`) and ``leaderboard.md``.

:func:`pareto_front`, :func:`cost_comparisons` and :func:`accuracy_per_decade` read a finished board.
Running the bench is :mod:`labkit.studies.bench`; this module never runs a method.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from labkit.core import LABKIT_VERSION, paths
from labkit.core.data import canonical_name
from labkit.core.device import hardware_report, pick_device
from labkit.core.errors import LabkitError, UnknownNameError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.studies.paper_figures import REPORTED_TEACHERS, newer_work, note_for, primary_figure

SCHEMA = "labkit-leaderboard/1"
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
ACCESS_ORDER = ("white", "score", "decision", "none")  # most to least the teacher reveals
STATUSES = ("ok", "partial", "skipped")
#: the rungs of a method's ladder, in display order (see labkit.studies.bench.LADDER_RUNGS)
LADDER_ORDER = ("paper", "baseline", "addition", "combined")
#: section titles of the ladders
FAMILY_TITLES: dict[str, str] = {
    "reference": "Student alone (no teacher)",
    "kd": "Plain KD (Hinton et al. 2015): score box, all labelled data",
    "db3kd": "DB3KD (Wang, ICML 2021): decision box, labelled data",
    "zskd": "ZSKD (Nayak et al., ICML 2019): white box, no data",
    "zsdb3kd": "ZSDB3KD (Wang, ICML 2021): decision box, no data",
    "fsbbt": "FS-BBT (Nguyen et al., ECCV 2022): score box, a few unlabelled images",
    "mekd": "MEKD (Ma et al., CVPR 2024): score or decision box, 10% unlabelled edge data",
    "ideal": "IDEAL (Zhang et al., ICLR 2023): decision box, no data",
}
STAT_NAMES = ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s", "elapsed_s")


class BenchError(LabkitError):
    """The bench or its leaderboard cannot do what was asked (a saved file does not match, a run failed, ...)."""


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


# ----------------------------------------------------------------------------------------- statistics


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
    #: ingredient name -> mean {"rows", "holdout_rows", "queries"} over seeds; empty for runs saved before
    #: records named their ingredients
    ingredients: dict[str, dict[str, float]] = field(default_factory=dict)
    reported: dict[str, Any] | None = None  # paper_figures.ReportedFigure.to_dict(), label "reported"
    reported_note: str = ""
    note: str = ""  # why a row is partial or skipped
    family: str = ""  # the method's ladder, e.g. "zsdb3kd" (empty in files saved before ladders)
    rung: str = ""  # paper | baseline | addition | combined
    row_note: str = ""  # one line: what the row's transfer set holds

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
        for s in STAT_NAMES:
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
        for name in STAT_NAMES[:-1]:
            setattr(summary, name, Stat.of([getattr(r, name) for r in records]))
        summary.elapsed_s = Stat.of([run_elapsed_s(r.to_dict()) for r in records])
        summary.ingredients = _mean_ingredients(records)
    return summary


# ------------------------------------------------------------------------------------------ environment


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _command_line() -> str:
    """How this process was started (``python -m labkit bench ...`` for the CLI)."""
    if not sys.argv:
        return ""
    head = "python -m labkit" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return " ".join([head, *sys.argv[1:]])


def environment_info(device: torch.device | str | None = None, note: str = "") -> dict[str, Any]:
    """Machine, device and library versions for the leaderboard header."""
    dev = torch.device(device) if device is not None else pick_device()
    info: dict[str, Any] = dict(hardware_report(dev))
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchvision", "numpy", "plotly"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - optional
            pass
    versions["labkit"] = LABKIT_VERSION
    info.update({
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "git_commit": _git_commit(),
        "command": _command_line(),
    })
    if note:
        info["note"] = note
    return info


# --------------------------------------------------------------------------------------------- the board


def _opt(value: Any) -> str:
    """An option value as the CLI would take it (``a,b`` for a list)."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _fmt_pct(s: Stat | None) -> str:
    if s is None:
        return "—"
    return f"{100 * s.mean:.2f} ± {100 * s.std:.2f}" if s.std is not None else f"{100 * s.mean:.2f}"


def _fmt_int(s: Stat | None) -> str:
    if s is None:
        return "—"
    if s.std is not None and s.std > 0:
        return f"{s.mean:,.0f} ± {s.std:,.0f}"
    return f"{s.mean:,.0f}"


def _fmt_sec(s: Stat | None) -> str:
    if s is None:
        return "—"
    return f"{s.mean:.1f} ± {s.std:.1f}" if s.std is not None else f"{s.mean:.1f}"


@dataclass
class Leaderboard:
    """Every entry's summary, the per-run records, and where and how they were measured."""

    dataset: str
    profile: str
    seeds: list[int]
    entries: list[EntrySummary]
    runs: list[dict[str, Any]]  # ResultRecord.to_dict() of every run
    teacher: dict[str, Any]
    student_arch: str
    environment: dict[str, Any]
    created_utc: str
    bench_wall_s: float  # this invocation's wall time (resumed runs cost nothing here)
    total_run_s: float  # sum of every run's elapsed time, resumed or not
    schema: str = SCHEMA

    # ---- access
    def entry(self, key: str) -> EntrySummary:
        """The row for ``key``."""
        for e in self.entries:
            if e.key == key:
                return e
        raise UnknownNameError("leaderboard row", key, [e.key for e in self.entries])

    def measured(self) -> list[EntrySummary]:
        """The rows with at least one finished run."""
        return [e for e in self.entries if e.measured]

    def records(self) -> list[ResultRecord]:
        """Every run as a :class:`ResultRecord`."""
        return [ResultRecord.from_dict(dict(r)) for r in self.runs]

    # ---- serialisation
    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see :func:`validate_leaderboard` for its schema)."""
        return {
            "schema": self.schema, "created_utc": self.created_utc, "dataset": self.dataset, "profile": self.profile,
            "seeds": list(self.seeds), "teacher": self.teacher, "student_arch": self.student_arch,
            "environment": self.environment, "bench_wall_s": self.bench_wall_s, "total_run_s": self.total_run_s,
            "entries": [e.to_dict() for e in self.entries], "runs": self.runs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Leaderboard:
        """Rebuild from :meth:`to_dict` output (raises :class:`BenchError` on a wrong schema)."""
        problems = validate_leaderboard(d)
        if problems:
            raise BenchError("Not a valid leaderboard file: " + "; ".join(problems[:5]) +
                             ". Re-create it with `python -m labkit bench`.")
        return cls(dataset=d["dataset"], profile=d["profile"], seeds=list(d["seeds"]),
                   entries=[EntrySummary.from_dict(e) for e in d["entries"]], runs=list(d["runs"]),
                   teacher=d["teacher"], student_arch=d["student_arch"], environment=d["environment"],
                   created_utc=d["created_utc"], bench_wall_s=d["bench_wall_s"], total_run_s=d["total_run_s"],
                   schema=d["schema"])

    @classmethod
    def load(cls, path: str | Path) -> Leaderboard:
        """Read a ``leaderboard.json``."""
        path = Path(path)
        if not path.exists():
            raise BenchError(f"No leaderboard at {path}. Run `python -m labkit bench` first.")
        return cls.from_dict(json.loads(path.read_text()))

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``leaderboard.json`` and ``leaderboard.md`` into ``out_dir``; return both paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        jpath, mpath = out_dir / LEADERBOARD_JSON, out_dir / LEADERBOARD_MD
        jpath.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
        mpath.write_text(self.to_markdown() + "\n")
        return jpath, mpath

    # ---- presentation
    def to_markdown(self) -> str:
        """The leaderboard as a Markdown document: header, table with reported figures, notes, machine."""
        env = self.environment
        vers = env.get("versions", {})
        teacher_rep = "; ".join(f"{100 * acc:.2f}% ({paper}, reported)"
                                for acc, paper in REPORTED_TEACHERS.get(self.dataset, ()))
        lines = [
            f"# Leaderboard: {self.dataset}, profile `{self.profile}`, seeds {', '.join(map(str, self.seeds))}",
            "",
            f"Teacher **{self.teacher.get('arch')}**: {100 * float(self.teacher.get('test_acc', float('nan'))):.2f}% "
            f"test accuracy (measured by the lab)"
            + (f"; the papers report {teacher_rep}" if teacher_rep else "") + ".",
            f"Student **{self.student_arch}** for every method. Test accuracy and agreement (student = teacher on the "
            "test set) are measured by the runner, never used for model selection. Queries are images sent to the "
            "teacher. **Transfer set** = distinct training rows the student trained on, the selection holdout "
            "excluded; the same definition for every method (the notes list each row's ingredients).",
            "",
            "| method | ladder | access | data | test acc. % (mean ± std) | paper, **reported** % | agreement % | "
            "queries | transfer set | wall s (method) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in self.entries:
            rep = "—"
            if e.reported:
                acc = e.reported.get("student_acc")
                mark = "" if e.reported.get("verified", True) else "†"
                rep = f"{100 * acc:.2f}{mark} (reported)" if acc is not None else "—"
            name = e.key if e.status == "ok" else f"{e.key} ({e.status})"
            lines.append(f"| {name} | {e.rung or '—'} | {e.access} | {e.data_access} | {_fmt_pct(e.student_acc)} | "
                         f"{rep} | {_fmt_pct(e.agreement)} | {_fmt_int(e.queries)} | {_fmt_int(e.transfer_set_size)} | "
                         f"{_fmt_sec(e.wall_s)} |")
        lines += [
            "",
            "**reported** = the figure the method's paper reports for this data set (LeNet-5 → LeNet-5-half in the "
            "papers; their teachers and sizes differ from the lab's), from the lab's method reference; not measured "
            "here. † = marked *unverified* in the reference (taken from secondary summaries).",
            "",
        ]
        later = newer_work(self.dataset)
        if later:
            lines += ["## Reported by later work (not measured here)", "",
                      "Where the field went after the seed papers; every figure is *reported* by its source (teachers "
                      "differ), none is measured by the lab.", ""]
            lines += [f"- {f.setting}: **{f.short()}**" + (f", {f.queries}" if f.queries else "")
                      + f". Source: {f.paper}." + (f" {f.note[0].upper()}{f.note[1:]}." if f.note else "")
                      for f in later]
            lines.append("")
        lines += self.ladder_markdown()
        lines += [
            "",
            "## Where it ran",
            "",
            f"- machine: {env.get('machine')} — {env.get('platform')}; {env.get('cpu_count')} CPUs, "
            f"{env.get('cpu_threads')} torch threads",
            f"- device: {env.get('device')}" + (f" ({env['gpu']})" if env.get("gpu") else ""),
            "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
            f"- git commit: {env.get('git_commit') or 'unknown'}; created {self.created_utc}",
            f"- wall time: {self.total_run_s / 60:.1f} min for all runs ({len(self.runs)} runs); "
            f"this invocation {self.bench_wall_s / 60:.1f} min",
        ]
        if env.get("note"):
            lines.append(f"- note: {env['note']}")
        return "\n".join(lines)

    def ladders(self) -> dict[str, list[EntrySummary]]:
        """The rows per method family, each in ladder order (paper, baselines, additions, combined)."""
        out: dict[str, list[EntrySummary]] = {}
        for e in self.entries:
            out.setdefault(e.family or e.key, []).append(e)
        for rows in out.values():
            rows.sort(key=lambda e: LADDER_ORDER.index(e.rung) if e.rung in LADDER_ORDER else len(LADDER_ORDER))
        return out

    def ladder_markdown(self) -> list[str]:
        """One section per method: each row's accuracy, then its rows and queries per ingredient, one line each."""
        lines = ["## The ladders: where each method's accuracy comes from", "",
                 "Per method: the paper's mechanism alone (**paper**, sizes reduced to the profile), baselines that "
                 "isolate one ingredient (**baseline**), the paper's mechanism plus one lab addition (**addition**), "
                 "and the lab's combined recipe (**combined**). A `+x` in a row's name marks a lab addition x. "
                 "Each line gives the row's transfer-set rows and teacher queries per ingredient (mean over seeds).",
                 ""]
        for family, rows in self.ladders().items():
            lines += [f"### {FAMILY_TITLES.get(family, family)}", ""]
            for e in rows:
                extra = f" Status: {e.status}, {e.note}." if e.note else ""
                opts = ", ".join(f"{k}={_opt(v)}" for k, v in e.options.items())
                lines.append(f"- **{e.key}** ({e.rung or 'row'}, {_fmt_pct(e.student_acc)}%) — {e.row_note or e.title}"
                             + (f" (`{opts}`)" if opts else "") + f". Ingredients: {e.ingredients_note()}. "
                             f"Reported: {e.reported_note}{extra}")
            lines.append("")
        return lines

    def __repr__(self) -> str:
        done = sum(e.measured for e in self.entries)
        return (f"Leaderboard({self.dataset}, profile={self.profile}, seeds={self.seeds}, "
                f"{done}/{len(self.entries)} entries measured, {len(self.runs)} runs)")


_TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "schema": str, "created_utc": str, "dataset": str, "profile": str, "seeds": list, "teacher": dict,
    "student_arch": str, "environment": dict, "bench_wall_s": (int, float), "total_run_s": (int, float),
    "entries": list, "runs": list}
_ENTRY_KEYS = ("key", "method", "status", "access", "data_access", "options", "seeds", "reported", "reported_note",
               *STAT_NAMES[:-1])
_RUN_KEYS = ("method", "access", "dataset", "student_acc", "agreement", "queries", "transfer_set_size", "wall_s",
             "device", "profile", "seed", "torch")


def _entry_problems(e: Any, i: int) -> list[str]:
    """Everything wrong with one entry of a leaderboard document."""
    if not isinstance(e, dict):
        return [f"entry {i} is not an object"]
    name = repr(e.get("key", i))
    out = [f"entry {name} lacks {k!r}" for k in _ENTRY_KEYS if k not in e]
    if e.get("status") not in STATUSES:
        out.append(f"entry {name} has status {e.get('status')!r}, not one of {STATUSES}")
    if e.get("status") in ("ok", "partial"):
        for key in STAT_NAMES[:-1]:
            s = e.get(key)
            if not isinstance(s, dict) or not all(k in s for k in ("mean", "std", "n", "values")):
                out.append(f"entry {name}: {key!r} is not a statistic (mean, std, n, values)")
            elif s["n"] != len(s["values"]) or not all(isinstance(v, (int, float)) for v in s["values"]):
                out.append(f"entry {name}: {key!r} has n != len(values) or non-numbers")
        acc = e.get("student_acc") or {}
        if isinstance(acc, dict) and not all(0.0 <= v <= 1.0 for v in acc.get("values", [])):
            out.append(f"entry {name}: student_acc values must be fractions in [0, 1]")
    rep = e.get("reported")
    if rep is not None and (not isinstance(rep, dict) or rep.get("label") != "reported"):
        out.append(f"entry {name}: a reported figure must carry label 'reported'")
    if not isinstance(e.get("ingredients", {}), dict):
        out.append(f"entry {name}: 'ingredients' must map ingredient names to rows and queries")
    return out


def validate_leaderboard(d: Any) -> list[str]:
    """Everything wrong with a leaderboard JSON document (empty list: it matches the schema)."""
    if not isinstance(d, dict):
        return ["the document is not a JSON object"]
    out = [f"missing top-level key {k!r}" if k not in d else f"{k!r} has the wrong type ({type(d[k]).__name__})"
           for k, typ in _TOP_LEVEL.items() if k not in d or not isinstance(d[k], typ)]
    if out:
        return out
    if d["schema"] != SCHEMA:
        out.append(f"schema is {d['schema']!r}, expected {SCHEMA!r}")
    out += [f"environment lacks {k!r}" for k in ("device", "machine", "versions") if k not in d["environment"]]
    out += [f"teacher lacks {k!r}" for k in ("arch", "test_acc") if k not in d["teacher"]]
    for i, e in enumerate(d["entries"]):
        out += _entry_problems(e, i)
    for i, r in enumerate(d["runs"]):
        missing = [k for k in _RUN_KEYS if k not in r]
        if missing:
            out.append(f"run {i} lacks {missing}")
        elif r["profile"] != d["profile"] or r["dataset"] != d["dataset"]:
            out.append(f"run {i} is for {r['dataset']}/{r['profile']}, not {d['dataset']}/{d['profile']}")
    return out


def saved_leaderboard(dataset: str, profile: str | None, directory: str | Path | None = None) -> Leaderboard | None:
    """The leaderboard saved in ``directory`` (default results/) if it is for this data set and profile."""
    path = (Path(directory) if directory is not None else paths.results_dir()) / LEADERBOARD_JSON
    if not path.exists():
        return None
    try:
        board = Leaderboard.load(path)
    except (BenchError, json.JSONDecodeError):
        return None
    if board.dataset != canonical_name(dataset) or board.profile != get_profile(profile).name:
        return None
    return board


# ------------------------------------------------------------------------------------------- analysis


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


#: (question, entry with more, entry with less): pairs of rows that differ in one thing only.
COST_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("interface: scores vs decisions, the same edge images and plain KD", "kd-edge", "kd-edge-hard"),
    ("interface: scores vs decisions, MEKD as published", "mekd-soft-paper", "mekd-hard-paper"),
    ("interface: scores vs decisions, the lab's combined MEKD", "mekd-soft+edge", "mekd-hard+edge"),
    ("interface: white box vs decisions, no data, the papers' mechanisms", "zskd-paper", "zsdb3kd-paper"),
    ("data: all labelled images vs a few unlabelled ones, a score box", "kd", "fsbbt"),
    ("data: a teacher vs the labels alone", "kd", "student"),
    ("method: generative alignment vs plain KD, both with the edge images", "mekd-soft+edge", "kd-edge"),
)


def cost_comparisons(board: Leaderboard) -> list[CostComparison]:
    """The :data:`COST_PAIRS` whose two rows were both measured, as accuracy gaps and query ratios."""
    rows = {e.key: e for e in board.measured()}
    out = []
    for question, a, b in COST_PAIRS:
        if a in rows and b in rows:
            ea, eb = rows[a], rows[b]
            qa, qb = ea.queries.mean, eb.queries.mean  # type: ignore[union-attr]
            ratio = qb / qa if qa > 0 and qb > 0 else None
            gap = ea.student_acc.mean - eb.student_acc.mean  # type: ignore[union-attr]
            out.append(CostComparison(question, a, b, gap, ratio))
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
    """Every measured row against its family's measured paper row: the first ``paper`` rung with the row's access
    level (MEKD's hard rows against ``mekd-hard-paper``), else the family's first ``paper`` rung."""
    out = []
    for family, rows in board.ladders().items():
        papers = [e for e in rows if e.rung == "paper" and e.measured]
        if not papers:
            continue
        for e in rows:
            same_access = [p for p in papers if p.access == e.access]
            base = same_access[0] if same_access else papers[0]
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
