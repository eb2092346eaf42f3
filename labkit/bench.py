"""The bench: every method on one teacher and one student, each seed saved as it finishes.

:func:`run_bench` runs each :class:`BenchEntry` (a method plus options, e.g. ``db3kd`` with
``measure="mbd"``) for each seed through :func:`labkit.runner.run_method`, saves every (entry, seed)
record as soon as it finishes (``<out_dir>/<profile>/<dataset>/<entry>-seed<k>.json``) so an
interrupted bench resumes where it stopped (:func:`load_saved_run`), optionally on several worker
processes, and returns a :class:`~labkit.leaderboard.Leaderboard` (the table, its files and its
analysis live in :mod:`labkit.leaderboard`). ``python -m labkit bench`` does all of it from the shell.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import paths
from .data import canonical_name
from .device import pick_device
from .errors import LabkitError, UnknownNameError
from .leaderboard import (
    LEADERBOARD_JSON,
    BenchError,
    Leaderboard,
    environment_info,
    run_elapsed_s,
    saved_leaderboard,
    summarize_entry,
)
from .profiles import get_profile
from .results import ResultRecord
from .runner import run_method
from .teachers import default_student_arch, default_teacher_arch, get_teacher

__all__ = ["BENCH_ENTRIES", "BENCH_KEYS", "QUICK_ORDER", "BenchEntry", "BenchError", "get_entries", "load_or_run",
           "load_saved_run", "parse_overrides", "run_bench", "run_path"]


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
    """``["db3kd-bd.queries-per-sample=500", "kd.epochs=3"]`` → ``{"db3kd-bd": {"queries_per_sample": 500},
    "kd": {"epochs": 3}}`` (dashes in option names become underscores; values are read as JSON, else text)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise BenchError(f"Cannot read the override {item!r}: write ENTRY.OPTION=VALUE, e.g. kd.epochs=3.")
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
              force: bool = False, overrides: dict[str, dict[str, Any]] | None = None,
              time_budget_s: float | None = None, device: torch.device | str | None = None, progress: bool = True,
              note: str = "", save: bool = True, jobs: int = 1, threads_per_job: int | None = None,
              log: Callable[[str], None] | None = print) -> Leaderboard:
    """Run every entry for every seed (seed-major), saving each run as it finishes; return the :class:`Leaderboard`.

    Entries run in the order given; the leaderboard lists them in the lab's order (:data:`BENCH_KEYS`).

    * A saved run with the same entry, profile, data set, seed and options is reused unless ``force``.
    * ``time_budget_s``: once this invocation has run that long, the remaining runs are skipped (their
      rows say ``skipped`` or ``partial``); the default runs everything.
    * ``overrides``: extra options per entry key (they also reach :func:`run_method`'s own keywords,
      e.g. ``train_limit`` or ``budget``).
    * ``jobs`` > 1 runs that many (entry, seed) runs at once in worker processes, each with
      ``threads_per_job`` torch threads (default: CPU cores / jobs); records are saved as each finishes.
    * ``save`` writes ``leaderboard.json`` / ``.md`` into ``out_dir`` (default :func:`labkit.paths.results_dir`).
    """
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
    dev = torch.device(device) if device is not None else pick_device()
    teacher = get_teacher(dataset, device=dev, progress=progress)
    options = {e.key: {**e.option_dict(), **overrides.get(e.key, {})} for e in chosen}
    done: dict[str, list[ResultRecord]] = {e.key: [] for e in chosen}
    skipped: dict[str, list[int]] = {e.key: [] for e in chosen}
    plan = [(s, e) for s in seeds for e in chosen]
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
            f"{rec.wall_s:.1f} s (run {run_elapsed_s(result):.1f} s) -> {path}")

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
        if not recs:
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
        total_run_s=round(sum(run_elapsed_s(r) for r in runs), 2),
    )
    board.teacher.setdefault("arch", default_teacher_arch(dataset))
    if save:
        jpath, mpath = board.save(out_dir)
        say(f"[bench] wrote {jpath} and {mpath}")
    return board


def load_or_run(dataset: str = "fashion-mnist", profile: str | None = None, seeds: Sequence[int] = (0,), *,
                use_saved: bool = True, entries: Sequence[str] | None = None, time_budget_s: float | None = None,
                progress: bool = True, log: Callable[[str], None] | None = print) -> Leaderboard:
    """For notebooks: the saved ``results/leaderboard.json`` if it matches, otherwise a fresh bench.

    A fresh bench runs in a temporary folder, so it never overwrites the committed results.
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
    return run_bench(dataset, profile, seeds, entries=entries, out_dir=tmp, time_budget_s=time_budget_s,
                     progress=progress, log=log)
