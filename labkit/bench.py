"""The leaderboard: every method on one teacher and one student, side by side, with queries.

:func:`run_bench` runs each :class:`BenchEntry` (a method plus options, e.g.
``db3kd`` with ``measure="mbd"``) for each seed through the public runner
:func:`labkit.methods.base.run_method`, saves every (entry, seed) record as soon as
it finishes (``<out_dir>/<profile>/<dataset>/<entry>-seed<k>.json``) so an
interrupted bench resumes where it stopped, and returns a :class:`Leaderboard`:
mean ± std of test accuracy, agreement, queries, transfer-set size and wall time
per entry, the access level, the papers' reported figures beside them
(:mod:`labkit.paper_figures`, always labelled "reported"), and the machine,
device and library versions.

:meth:`Leaderboard.save` writes ``leaderboard.json`` and ``leaderboard.md``;
``python -m labkit bench`` does all of it from the shell.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from . import paths
from .data import canonical_name
from .device import hardware_report, pick_device
from .errors import LabkitError, UnknownNameError
from .paper_figures import REPORTED_TEACHERS, note_for, primary_figure
from .profiles import get_profile
from .results import ResultRecord

SCHEMA = "labkit-leaderboard/1"
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_MD = "leaderboard.md"
ACCESS_ORDER = ("white", "score", "decision", "none")  # most to least the teacher reveals
STATUSES = ("ok", "partial", "missing", "skipped")


class BenchError(LabkitError):
    """The bench cannot run as asked (a method is missing, a saved file does not match, ...)."""


@dataclass(frozen=True)
class BenchEntry:
    """One row of the leaderboard: a method, the options it runs with, and what it is expected to need."""

    key: str  # row name, e.g. "db3kd-mbd"
    method: str  # registry name for run_method, e.g. "db3kd"
    title: str
    access: str  # the teacher access the method is built for (the record's own value wins)
    data_access: str  # labeled | unlabeled | none
    options: tuple[tuple[str, Any], ...] = ()

    def option_dict(self) -> dict[str, Any]:
        """The options as a dict (for :func:`run_method`)."""
        return dict(self.options)


#: Every entry of the lab's leaderboard, in the order the table shows them.
BENCH_ENTRIES: tuple[BenchEntry, ...] = (
    BenchEntry("student", "student", "Student alone (CE on labels, no teacher)", "none", "labeled"),
    BenchEntry("kd", "kd", "Plain KD (Hinton), all training data", "score", "labeled"),
    BenchEntry("db3kd-bd", "db3kd", "DB3KD, boundary distance (BD)", "decision", "labeled", (("measure", "bd"),)),
    BenchEntry("db3kd-mbd", "db3kd", "DB3KD, minimal boundary distance (MBD)", "decision", "labeled",
               (("measure", "mbd"),)),
    BenchEntry("zskd", "zskd", "ZSKD, Data Impressions (no data)", "white", "none"),
    BenchEntry("zsdb3kd", "zsdb3kd", "ZSDB3KD, pseudo-samples (no data)", "decision", "none"),
    BenchEntry("fsbbt", "fsbbt", "FS-BBT, few-shot + MixUp + CVAE", "score", "unlabeled"),
    BenchEntry("mekd-soft", "mekd", "MEKD, soft responses", "score", "unlabeled", (("response", "soft"),)),
    BenchEntry("mekd-hard", "mekd", "MEKD, hard responses", "decision", "unlabeled", (("response", "hard"),)),
    BenchEntry("kd-edge", "kd-edge", "Plain KD on MEKD's 10% edge subset (same images, same student recipe)",
               "score", "unlabeled"),
)
BENCH_KEYS: tuple[str, ...] = tuple(e.key for e in BENCH_ENTRIES)
#: A running order for a time-limited bench (notebook 08 in smoke): cheap runs first, one per access level early.
QUICK_ORDER: tuple[str, ...] = ("fsbbt", "student", "kd-edge", "mekd-hard", "kd", "db3kd-mbd", "zskd", "mekd-soft",
                                "zsdb3kd", "db3kd-bd")


def get_entries(keys: Iterable[str] | None = None) -> list[BenchEntry]:
    """The bench entries named by ``keys`` (all of them for ``None``), in the leaderboard's order."""
    if keys is None:
        return list(BENCH_ENTRIES)
    wanted = [k.strip().lower().replace("_", "-") for k in keys]
    for k in wanted:
        if k not in BENCH_KEYS:
            raise UnknownNameError("bench entry name", k, list(BENCH_KEYS))
    return [e for e in BENCH_ENTRIES if e.key in wanted]


def missing_methods(entries: Sequence[BenchEntry]) -> dict[str, str]:
    """Entries whose method module does not exist yet: ``{entry key: reason}`` (empty when all are there)."""
    from .methods.base import get_method

    out: dict[str, str] = {}
    for e in entries:
        try:
            get_method(e.method)
        except UnknownNameError as exc:
            out[e.key] = f"method {e.method!r} is not implemented yet ({exc})"
    return out


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
    def of(cls, values: Sequence[float]) -> "Stat":
        """Summarise ``values`` (at least one)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        std = float(t.std(correction=1)) if len(t) > 1 else None
        return cls(float(t.mean()), std, float(t.min()), float(t.max()), len(t), [float(v) for v in values])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Stat":
        """Rebuild from :func:`dataclasses.asdict` output."""
        return cls(**{k: d[k] for k in ("mean", "std", "min", "max", "n", "values")})


@dataclass
class EntrySummary:
    """One leaderboard row: the measured statistics over seeds, and the reported figure beside them."""

    key: str
    method: str
    title: str
    options: dict[str, Any]
    status: str  # ok | partial | missing | skipped
    access: str
    data_access: str
    seeds: list[int] = field(default_factory=list)
    student_acc: Stat | None = None
    agreement: Stat | None = None
    queries: Stat | None = None
    transfer_set_size: Stat | None = None
    wall_s: Stat | None = None  # the method's own time (distill), as the record measures it
    elapsed_s: Stat | None = None  # the whole run: loading, distilling, evaluating
    reported: dict[str, Any] | None = None  # paper_figures.ReportedFigure.to_dict(), label "reported"
    reported_note: str = ""
    note: str = ""

    @property
    def measured(self) -> bool:
        """True when at least one seed ran."""
        return self.student_acc is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EntrySummary":
        """Rebuild from :meth:`to_dict` output."""
        stats = ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s", "elapsed_s")
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for s in stats:
            if kw.get(s) is not None:
                kw[s] = Stat.from_dict(kw[s])
        return cls(**kw)


def _elapsed(run: dict[str, Any]) -> float:
    """A run's whole elapsed time as the bench measured it (its method wall time if unknown)."""
    bench = run.get("extras", {}).get("bench", {})
    return float(bench.get("elapsed_s", run["wall_s"])) if isinstance(bench, dict) else float(run["wall_s"])


def summarize_entry(entry: BenchEntry, records: Sequence[ResultRecord], dataset: str, *,
                    status: str | None = None, note: str = "", options: dict[str, Any] | None = None) -> EntrySummary:
    """Aggregate one entry's records (one per seed) into an :class:`EntrySummary`."""
    fig = primary_figure(entry.key, dataset)
    summary = EntrySummary(
        key=entry.key, method=entry.method, title=entry.title,
        options=dict(options if options is not None else entry.option_dict()),
        status=status or ("ok" if records else "skipped"), access=entry.access, data_access=entry.data_access,
        reported=fig.to_dict() if fig else None, reported_note=note_for(entry.key, dataset), note=note)
    if records:
        summary.seeds = [r.seed for r in records]
        summary.access = records[0].access
        summary.student_acc = Stat.of([r.student_acc for r in records])
        summary.agreement = Stat.of([r.agreement for r in records])
        summary.queries = Stat.of([r.queries for r in records])
        summary.transfer_set_size = Stat.of([r.transfer_set_size for r in records])
        summary.wall_s = Stat.of([r.wall_s for r in records])
        summary.elapsed_s = Stat.of([_elapsed(r.to_dict()) for r in records])
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
    from . import __version__ as labkit_version

    versions["labkit"] = labkit_version
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
    def from_dict(cls, d: dict[str, Any]) -> "Leaderboard":
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
    def load(cls, path: str | Path) -> "Leaderboard":
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
        """The leaderboard as a Markdown document: header, table with reported figures, notes."""
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
            "teacher.",
            "",
            "| method | access | data | test acc. % (mean ± std) | paper, **reported** % | agreement % | queries | "
            "transfer set | wall s (method) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for e in self.entries:
            rep = "—"
            if e.reported:
                acc = e.reported.get("student_acc")
                mark = "" if e.reported.get("verified", True) else "†"
                rep = f"{100 * acc:.2f}{mark} (reported)" if acc is not None else "—"
            name = e.key if e.status in ("ok",) else f"{e.key} ({e.status})"
            lines.append(f"| {name} | {e.access} | {e.data_access} | {_fmt_pct(e.student_acc)} | {rep} | "
                         f"{_fmt_pct(e.agreement)} | {_fmt_int(e.queries)} | {_fmt_int(e.transfer_set_size)} | "
                         f"{_fmt_sec(e.wall_s)} |")
        lines += [
            "",
            "**reported** = the figure the method's paper reports for this data set (LeNet-5 → LeNet-5-half in the "
            "papers; their teachers and sizes differ from the lab's), from the lab's method reference; not measured "
            "here. † = marked *unverified* in the reference (taken from secondary summaries).",
            "",
            "## Notes per method",
            "",
        ]
        for e in self.entries:
            extra = f" Status: {e.status}, {e.note}." if e.note else ""
            opts = ", ".join(f"{k}={v}" for k, v in e.options.items())
            lines.append(f"- **{e.key}** — {e.title}" + (f" (`{opts}`)" if opts else "") +
                         f". Reported: {e.reported_note}{extra}")
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

    def __repr__(self) -> str:
        done = sum(e.measured for e in self.entries)
        return (f"Leaderboard({self.dataset}, profile={self.profile}, seeds={self.seeds}, "
                f"{done}/{len(self.entries)} entries measured, {len(self.runs)} runs)")


def validate_leaderboard(d: Any) -> list[str]:
    """Everything wrong with a leaderboard JSON document (empty list: it matches the schema)."""
    out: list[str] = []
    if not isinstance(d, dict):
        return ["the document is not a JSON object"]
    top = {"schema": str, "created_utc": str, "dataset": str, "profile": str, "seeds": list, "teacher": dict,
           "student_arch": str, "environment": dict, "bench_wall_s": (int, float), "total_run_s": (int, float),
           "entries": list, "runs": list}
    for key, typ in top.items():
        if key not in d:
            out.append(f"missing top-level key {key!r}")
        elif not isinstance(d[key], typ):
            out.append(f"{key!r} has the wrong type ({type(d[key]).__name__})")
    if out:
        return out
    if d["schema"] != SCHEMA:
        out.append(f"schema is {d['schema']!r}, expected {SCHEMA!r}")
    for key in ("device", "machine", "versions"):
        if key not in d["environment"]:
            out.append(f"environment lacks {key!r}")
    for key in ("arch", "test_acc"):
        if key not in d["teacher"]:
            out.append(f"teacher lacks {key!r}")
    stat_keys = ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s")
    for i, e in enumerate(d["entries"]):
        if not isinstance(e, dict):
            out.append(f"entry {i} is not an object")
            continue
        for key in ("key", "method", "status", "access", "data_access", "options", "seeds", "reported",
                    "reported_note", *stat_keys):
            if key not in e:
                out.append(f"entry {e.get('key', i)!r} lacks {key!r}")
        if e.get("status") not in STATUSES:
            out.append(f"entry {e.get('key', i)!r} has status {e.get('status')!r}, not one of {STATUSES}")
        if e.get("status") in ("ok", "partial"):
            for key in stat_keys:
                s = e.get(key)
                if not isinstance(s, dict) or not all(k in s for k in ("mean", "std", "n", "values")):
                    out.append(f"entry {e.get('key', i)!r}: {key!r} is not a statistic (mean, std, n, values)")
                elif s["n"] != len(s["values"]) or not all(isinstance(v, (int, float)) for v in s["values"]):
                    out.append(f"entry {e.get('key', i)!r}: {key!r} has n != len(values) or non-numbers")
            acc = e.get("student_acc") or {}
            if isinstance(acc, dict) and not all(0.0 <= v <= 1.0 for v in acc.get("values", [])):
                out.append(f"entry {e.get('key', i)!r}: student_acc values must be fractions in [0, 1]")
        rep = e.get("reported")
        if rep is not None and (not isinstance(rep, dict) or rep.get("label") != "reported"):
            out.append(f"entry {e.get('key', i)!r}: a reported figure must carry label 'reported'")
    for i, r in enumerate(d["runs"]):
        missing = [k for k in ("method", "access", "student_acc", "agreement", "queries", "transfer_set_size",
                               "wall_s", "device", "profile", "seed", "torch") if k not in r]
        if missing:
            out.append(f"run {i} lacks {missing}")
        elif r["profile"] != d["profile"] or r["dataset"] != d["dataset"]:
            out.append(f"run {i} is for {r['dataset']}/{r['profile']}, not {d['dataset']}/{d['profile']}")
    return out


# ------------------------------------------------------------------------------------------- running


def run_path(out_dir: str | Path, profile: str, dataset: str, key: str, seed: int) -> Path:
    """Where one (entry, seed) record is saved: ``<out_dir>/<profile>/<dataset>/<key>-seed<seed>.json``."""
    return Path(out_dir) / profile / dataset / f"{key}-seed{seed}.json"


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, sort_keys=True, default=str))


def load_saved_run(path: Path, key: str, profile: str, dataset: str, seed: int,
                   options: dict[str, Any]) -> ResultRecord | None:
    """The saved record at ``path`` if it is the same entry, profile, data set, seed and options; else ``None``."""
    if not path.exists():
        return None
    try:
        rec = ResultRecord.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None
    bench = rec.extras.get("bench", {})
    if not isinstance(bench, dict):
        return None
    same = (rec.profile == profile and rec.dataset == dataset and rec.seed == seed and bench.get("entry") == key
            and bench.get("options") == _jsonable(options))
    return rec if same else None


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["db3kd-bd.queries=500", "kd.epochs=3"]`` → ``{"db3kd-bd": {"queries": 500}, "kd": {"epochs": 3}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise BenchError(f"Cannot read the override {item!r}: write ENTRY.OPTION=VALUE, e.g. db3kd-bd.queries=500.")
        lhs, raw = item.split("=", 1)
        key, opt = lhs.split(".", 1)
        get_entries([key])  # unknown entry names raise a clear error
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(key.strip().lower(), {})[opt.strip().replace("-", "_")] = value
    return out


def _init_worker(threads: int) -> None:
    """Set the torch thread count in a bench worker process."""
    torch.set_num_threads(max(1, threads))


def _run_one(entry: BenchEntry, options: dict[str, Any], dataset: str, profile: str, seed: int, device: str,
             progress: bool, path: str, deadline: float | None) -> dict[str, Any] | None:
    """Run one (entry, seed), save its record at ``path`` and return it as a dict (``None``: past the deadline)."""
    from .methods.base import run_method

    if deadline is not None and time.time() > deadline:
        return None
    t0 = time.perf_counter()
    try:
        run = run_method(entry.method, dataset=dataset, profile=profile, seed=seed, device=device, progress=progress,
                         **options)
    except LabkitError as exc:
        raise BenchError(f"{entry.key} (seed {seed}) failed: {exc}") from exc
    rec = run.record
    rec.extras["bench"] = {"entry": entry.key, "options": _jsonable(options),
                           "elapsed_s": round(time.perf_counter() - t0, 2), "torch_threads": torch.get_num_threads()}
    rec.save(path)
    return rec.to_dict()


def run_bench(dataset: str = "fashion-mnist", profile: str | None = None, seeds: Sequence[int] = (0,), *,
              entries: Sequence[str | BenchEntry] | None = None, out_dir: str | Path | None = None,
              force: bool = False, allow_missing: bool = False, overrides: dict[str, dict[str, Any]] | None = None,
              time_budget_s: float | None = None, device: torch.device | str | None = None, progress: bool = True,
              note: str = "", save: bool = True, jobs: int = 1, threads_per_job: int | None = None,
              log: Callable[[str], None] | None = print) -> Leaderboard:
    """Run every entry for every seed (seed-major), saving each run as it finishes; return the :class:`Leaderboard`.

    Entries run in the order given; the leaderboard lists them in the lab's order (:data:`BENCH_KEYS`).

    * A saved run with the same entry, profile, data set, seed and options is reused unless ``force``.
    * A method whose module does not exist yet is an error before anything runs, unless ``allow_missing``
      (then its row says ``missing``).
    * ``time_budget_s``: once this invocation has run that long, the remaining runs are skipped (their
      rows say ``skipped`` or ``partial``); the default runs everything.
    * ``overrides``: extra options per entry key (they also reach :func:`run_method`'s own keywords,
      e.g. ``train_limit`` or ``budget``).
    * ``jobs`` > 1 runs that many (entry, seed) runs at once in worker processes, each with
      ``threads_per_job`` torch threads (default: CPU cores / jobs); records are saved as each finishes.
    * ``save`` writes ``leaderboard.json`` / ``.md`` into ``out_dir`` (default :func:`labkit.paths.results_dir`).
    """
    from .teachers import default_student_arch, default_teacher_arch, get_teacher

    say = log or (lambda _msg: None)
    dataset = canonical_name(dataset)
    prof = get_profile(profile)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise BenchError("Give at least one seed, e.g. seeds=[0, 1, 2].")
    chosen = [e if isinstance(e, BenchEntry) else get_entries([e])[0] for e in entries] if entries is not None \
        else list(BENCH_ENTRIES)
    overrides = {k.lower(): dict(v) for k, v in (overrides or {}).items()}
    for k in overrides:
        get_entries([k])
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir()
    missing = missing_methods(chosen)
    if missing and not allow_missing:
        raise BenchError("The bench needs every method, but these are not implemented yet: " +
                         "; ".join(f"{k}: {why}" for k, why in missing.items()) +
                         ". Add the method module under labkit/methods/, pick entries with --only, or pass "
                         "--allow-missing to record them as missing.")
    dev = torch.device(device) if device is not None else pick_device()
    teacher = get_teacher(dataset, device=dev, progress=progress)
    options = {e.key: {**e.option_dict(), **overrides.get(e.key, {})} for e in chosen}
    done: dict[str, list[ResultRecord]] = {e.key: [] for e in chosen}
    skipped: dict[str, list[int]] = {e.key: [] for e in chosen}
    plan = [(s, e) for s in seeds for e in chosen if e.key not in missing]
    start = time.perf_counter()
    deadline = None if time_budget_s is None else time.time() + time_budget_s
    todo: list[tuple[int, BenchEntry, Path]] = []
    for seed, e in plan:
        path = run_path(out_dir, prof.name, dataset, e.key, seed)
        saved = None if force else load_saved_run(path, e.key, prof.name, dataset, seed, options[e.key])
        if saved is not None:
            done[e.key].append(saved)
            say(f"[bench] {e.key} seed {seed}: reusing {path}")
        else:
            todo.append((seed, e, path))

    def finish(seed: int, e: BenchEntry, path: Path, result: dict[str, Any] | None) -> None:
        if result is None:
            skipped[e.key].append(seed)
            say(f"[bench] {e.key} seed {seed}: skipped (time budget of {time_budget_s:.0f} s used up)")
            return
        rec = ResultRecord.from_dict(result)
        done[e.key].append(rec)
        say(f"[bench] {e.key} seed {seed}: test {100 * rec.student_acc:.2f}%, agreement "
            f"{100 * rec.agreement:.2f}%, {rec.queries:,} queries, transfer set {rec.transfer_set_size:,}, "
            f"{rec.wall_s:.1f} s (run {rec.extras['bench']['elapsed_s']:.1f} s) -> {path}")

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="bench", unit="run")
    try:
        if jobs <= 1 or len(todo) <= 1:
            for seed, e, path in todo:
                finish(seed, e, path, _run_one(e, options[e.key], dataset, prof.name, seed, str(dev), progress,
                                               str(path), deadline))
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            threads = threads_per_job or max(1, (os.cpu_count() or 1) // jobs)
            say(f"[bench] {len(todo)} runs on {jobs} worker processes, {threads} torch thread(s) each")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker, initargs=(threads,)) as pool:
                futures = {pool.submit(_run_one, e, options[e.key], dataset, prof.name, seed, str(dev), False,
                                       str(path), deadline): (seed, e, path) for seed, e, path in todo}
                try:
                    for fut in as_completed(futures):
                        finish(*futures[fut], fut.result())
                        if bar is not None:
                            bar.update(1)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    for key in done:
        done[key].sort(key=lambda r: r.seed)
    summaries = []
    for e in sorted(chosen, key=lambda e: BENCH_KEYS.index(e.key) if e.key in BENCH_KEYS else len(BENCH_KEYS)):
        recs = done[e.key]
        if e.key in missing:
            status, why = "missing", missing[e.key]
        elif not recs:
            status, why = "skipped", "not run: the time budget was used up"
        elif skipped[e.key]:
            status, why = "partial", f"seeds {skipped[e.key]} skipped: the time budget was used up"
        else:
            status, why = "ok", ""
        summaries.append(summarize_entry(e, recs, dataset, status=status, note=why, options=options[e.key]))
    runs = [r.to_dict() for e in summaries for r in done[e.key]]
    board = Leaderboard(
        dataset=dataset, profile=prof.name, seeds=seeds, entries=summaries, runs=runs,
        teacher={"arch": teacher.spec.arch, "test_acc": teacher.test_acc, "val_acc": teacher.val_acc,
                 "source": teacher.source},
        student_arch=str(runs[0]["student_arch"]) if runs else default_student_arch(dataset),
        environment=environment_info(dev, note), created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"),
        bench_wall_s=round(time.perf_counter() - start, 2),
        total_run_s=round(sum(_elapsed(r) for r in runs), 2),
    )
    board.teacher.setdefault("arch", default_teacher_arch(dataset))
    if save:
        jpath, mpath = board.save(out_dir)
        say(f"[bench] wrote {jpath} and {mpath}")
    return board


def saved_leaderboard(dataset: str, profile: str | None, directory: str | Path | None = None) -> Leaderboard | None:
    """The leaderboard saved in ``directory`` (default results/) if it is for this data set and profile."""
    path = Path(directory) if directory is not None else paths.results_dir()
    path = path / LEADERBOARD_JSON
    if not path.exists():
        return None
    try:
        board = Leaderboard.load(path)
    except (BenchError, json.JSONDecodeError):
        return None
    if board.dataset != canonical_name(dataset) or board.profile != get_profile(profile).name:
        return None
    return board


def load_or_run(dataset: str = "fashion-mnist", profile: str | None = None, seeds: Sequence[int] = (0,), *,
                use_saved: bool = True, entries: Sequence[str] | None = None, time_budget_s: float | None = None,
                progress: bool = True, log: Callable[[str], None] | None = print) -> Leaderboard:
    """For notebooks: the saved ``results/leaderboard.json`` if it matches, otherwise a fresh bench.

    A fresh bench runs every method that exists (missing ones are listed as missing) in a
    temporary folder, so it never overwrites the committed results.
    """
    if use_saved:
        board = saved_leaderboard(dataset, profile)
        if board is not None:
            if log:
                log(f"Loaded the saved leaderboard ({board.profile}, seeds {board.seeds}, created "
                    f"{board.created_utc}) from {paths.results_dir() / LEADERBOARD_JSON}.")
            return board
    tmp = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    if log:
        log(f"No saved leaderboard for {canonical_name(dataset)} / {get_profile(profile).name}: running the bench "
            f"now (records in {tmp}).")
    return run_bench(dataset, profile, seeds, entries=entries, out_dir=tmp, allow_missing=True,
                     time_budget_s=time_budget_s, progress=progress, log=log)


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


#: (question, entry with more, entry with less) pairs the notebook discusses.
COST_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("interface: scores vs decisions, same data", "kd", "db3kd-bd"),
    ("interface: scores vs decisions, same data", "kd", "db3kd-mbd"),
    ("interface: scores vs decisions, same generator", "mekd-soft", "mekd-hard"),
    ("interface: white-box vs decisions, no data", "zskd", "zsdb3kd"),
    ("data: all labeled vs few unlabeled, scores", "kd", "fsbbt"),
    ("data: few unlabeled vs none", "fsbbt", "zskd"),
    ("data: labeled vs none, decisions", "db3kd-bd", "zsdb3kd"),
    ("data: a teacher vs labels alone", "kd", "student"),
    ("method: generative alignment vs plain KD, same edge subset", "mekd-soft", "kd-edge"),
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
