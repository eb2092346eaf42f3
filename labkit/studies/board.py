"""The leaderboard: the table of every bench row, its files (``leaderboard.json`` and ``.md``) and its Markdown.

A :class:`Leaderboard` holds one :class:`~labkit.studies.board_stats.EntrySummary` per bench row, every run's
record, and the machine, device and library versions (:func:`labkit.studies.environment.environment_info`).
:meth:`Leaderboard.save` writes ``leaderboard.json`` (checked by
:func:`labkit.studies.board_schema.validate_leaderboard`) and ``leaderboard.md``; :func:`saved_leaderboard` reads
the board a bench saved in ``<results>/bench/<profile>/<dataset>/`` (:mod:`labkit.studies.results_layout`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core.data import canonical_name
from labkit.core.errors import BenchError, UnknownNameError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.studies.bench_rows import FAMILY_TITLES, LADDER_RUNGS
from labkit.studies.board_schema import SCHEMA, validate_leaderboard
from labkit.studies.board_stats import EntrySummary, fmt_int, fmt_pct, fmt_sec
from labkit.studies.paper_figures import REPORTED_TEACHERS, newer_work
from labkit.studies.results_layout import BENCH, study_dir

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
ACCESS_ORDER = ("white", "score", "decision", "none")  # most to least the teacher reveals
#: the rungs of a method's ladder, in display order
LADDER_ORDER: tuple[str, ...] = tuple(LADDER_RUNGS)


def _opt(value: Any) -> str:
    """An option value as the CLI would take it (``a,b`` for a list)."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)



def _table(entries: list[EntrySummary]) -> list[str]:
    """The Markdown table of some rows: accuracy, the papers' protocol, the reported figure, queries, seconds."""
    lines = ["| method | ladder | access | data | test acc. % (mean ± std) | best test epoch % ‡ | "
             "paper, **reported** % | agreement % | queries | transfer set | wall s (method) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        rep = "—"
        if e.reported:
            acc = e.reported.get("student_acc")
            mark = "" if e.reported.get("verified", True) else "†"
            rep = f"{100 * acc:.2f}{mark} (reported)" if acc is not None else "—"
        name = e.key if e.status == "ok" else f"{e.key} ({e.status})"
        lines.append(f"| {name} | {e.rung or '—'} | {e.access} | {e.data_access} | {fmt_pct(e.student_acc)} | "
                     f"{fmt_pct(e.best_test_epoch_acc)} | {rep} | {fmt_pct(e.agreement)} | {fmt_int(e.queries)} | "
                     f"{fmt_int(e.transfer_set_size)} | {fmt_sec(e.wall_s)} |")
    return lines


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

    def on_board_teacher(self, e: EntrySummary) -> bool:
        """True when row ``e`` distilled the board's teacher (rows saved before rows named one count as on it)."""
        return not e.teacher_arch or e.teacher_arch == self.teacher.get("arch")

    def measured(self, every_teacher: bool = False) -> list[EntrySummary]:
        """The rows with at least one finished run, on the board's teacher unless ``every_teacher``: the plots and
        comparisons set rows side by side, which only holds for one teacher."""
        return [e for e in self.entries if e.measured and (every_teacher or self.on_board_teacher(e))]

    def other_teachers(self) -> dict[str, list[EntrySummary]]:
        """The rows on another teacher than the board's, per teacher architecture, in board order."""
        out: dict[str, list[EntrySummary]] = {}
        for e in self.entries:
            if not self.on_board_teacher(e):
                out.setdefault(e.teacher_arch, []).append(e)
        return out

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
            f"Student **{self.student_arch}** for every method on this teacher. Test accuracy and agreement "
            "(student = teacher on the test set) are measured by the runner, never used for model selection. "
            "Queries are images sent to the teacher. **Transfer set** = distinct training rows the student trained "
            "on, the selection holdout excluded; the same definition for every method (the notes list each row's "
            "ingredients).",
            "",
            *_table([e for e in self.entries if self.on_board_teacher(e)]),
        ]
        for arch, rows in self.other_teachers().items():
            acc = rows[0].teacher_acc
            lines += [
                "", f"### On another teacher: **{arch}**"
                + (f" ({100 * acc:.2f}% test accuracy, measured by the lab)" if acc is not None else ""), "",
                f"Student **{rows[0].student_arch or '—'}**. These rows distil another teacher than the table above, "
                "so they sit beside their counterpart there, not in its comparisons or plots.", "", *_table(rows)]
        lines += [
            "",
            "**reported** = the figure the method's paper reports for this data set (LeNet-5 → LeNet-5-half in the "
            "papers; their teachers and sizes differ from the lab's), as listed in docs/methods/; not measured here. "
            "† = taken from a secondary summary, not checked against the paper itself. "
            "‡ = the papers' protocol (optimistic; never used for any choice): the student's best test accuracy over "
            "its epochs, as the papers' public code prints it, beside the honest figure of the epoch the selection "
            "split chose; — for runs saved before records kept it.",
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
                on = "" if self.on_board_teacher(e) else f" Teacher {e.teacher_arch} → student {e.student_arch}."
                lines.append(f"- **{e.key}** ({e.rung or 'row'}, {fmt_pct(e.student_acc)}%) — {e.row_note or e.title}"
                             + (f" (`{opts}`)" if opts else "") + f".{on} Ingredients: {e.ingredients_note()}. "
                             f"Reported: {e.reported_note}{extra}")
            lines.append("")
        return lines

    def __repr__(self) -> str:
        done = sum(e.measured for e in self.entries)
        return (f"Leaderboard({self.dataset}, profile={self.profile}, seeds={self.seeds}, "
                f"{done}/{len(self.entries)} entries measured, {len(self.runs)} runs)")


def saved_leaderboard(dataset: str, profile: str | None, directory: str | Path | None = None) -> Leaderboard | None:
    """The bench's board saved for this data set and profile in ``<directory>/bench/<profile>/<dataset>/`` (default
    directory: the results folder), or ``None`` when there is none (or it is for another data set or profile)."""
    dataset, prof = canonical_name(dataset), get_profile(profile).name
    path = study_dir(BENCH, prof, dataset, directory) / LEADERBOARD_JSON
    if not path.exists():
        return None
    try:
        board = Leaderboard.load(path)
    except (BenchError, json.JSONDecodeError):
        return None
    if board.dataset != dataset or board.profile != prof:
        return None
    return board
