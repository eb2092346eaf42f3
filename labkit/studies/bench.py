"""The bench: every method on one teacher and one student, each seed saved as it finishes.

The rows (a method plus options, e.g. ``db3kd`` with ``measure="mbd"``) are declared in
:mod:`labkit.studies.bench_rows`. :func:`run_bench` runs each row for each seed through
:func:`labkit.studies.runner.run_method` in three steps:

1. :func:`plan_bench`: which (row, seed) runs are still to do, and which saved records are reused;
2. :func:`execute_bench`: run them, optionally on several worker processes, saving every record as soon as it
   finishes (so an interrupted bench resumes where it stopped, :func:`load_saved_run`);
3. :func:`assemble_board`: summarise every row into a :class:`~labkit.studies.board.Leaderboard`.

Records and the board go to ``<results>/bench/<profile>/<dataset>/`` (:mod:`labkit.studies.results_layout`):
``<row>-seed<k>.json``, ``leaderboard.json`` and ``leaderboard.md``. ``python -m labkit bench`` does all of it
from the shell.
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

from labkit.core.data import canonical_name
from labkit.core.device import pick_device
from labkit.core.errors import BenchError, LabkitError, UnknownNameError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.core.teachers import default_student_arch, default_teacher_arch, get_teacher
from labkit.studies.bench_rows import BENCH_ENTRIES, BENCH_KEYS, LADDER_RUNGS, QUICK_ORDER, BenchEntry
from labkit.studies.board import LEADERBOARD_JSON, Leaderboard, saved_leaderboard
from labkit.studies.board_stats import run_elapsed_s, summarize_entry
from labkit.studies.cost import Estimate, describe_seconds, device_label, estimate_run
from labkit.studies.environment import environment_info
from labkit.studies.results_layout import BENCH, study_dir
from labkit.studies.runner import run_method

__all__ = ["BENCH_ENTRIES", "BENCH_KEYS", "LADDER_RUNGS", "QUICK_ORDER", "BenchEntry", "BenchError", "BenchPlan",
           "BenchRuns", "assemble_board", "execute_bench", "get_entries", "load_or_run", "load_saved_run",
           "parse_overrides", "plan_bench", "record_path", "run_bench", "run_path"]


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


# ------------------------------------------------------------------------------------------- records


def record_path(record_dir: str | Path, key: str, seed: int) -> Path:
    """Where one (entry, seed) record is saved in a study's folder: ``<record_dir>/<key>-seed<seed>.json``."""
    return Path(record_dir) / f"{key}-seed{seed}.json"


def run_path(out_dir: str | Path | None, profile: str, dataset: str, key: str, seed: int) -> Path:
    """Where the bench saves one (entry, seed) record: ``<out_dir>/bench/<profile>/<dataset>/<key>-seed<seed>.json``
    (``out_dir``: the results folder, default :func:`labkit.core.paths.results_dir`)."""
    return record_path(study_dir(BENCH, profile, dataset, out_dir), key, seed)


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(options, sort_keys=True, default=str))


def load_saved_run(path: Path, key: str, profile: str, dataset: str, seed: int,
                   options: dict[str, Any], teacher_arch: str | None = None) -> ResultRecord | None:
    """The saved record at ``path`` if it is the same entry, profile, data set, seed and options (and teacher, when
    ``teacher_arch`` is given); else ``None``."""
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
            and bench.get("options") == _jsonable(options)
            and (teacher_arch is None or rec.teacher_arch == teacher_arch))
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
        # the lab's own comparison, on the lab's own teacher also in class mode (a learner's budget is not its to
        # spend, and white-box rows need the weights): docs/course.md
        run = run_method(entry.method, dataset=dataset, profile=profile, seed=seed, device=device, progress=progress,
                         teacher_arch=entry.teacher or None, student_arch=entry.student or None, use_served=False,
                         **options)
    except LabkitError as exc:
        raise BenchError(f"{entry.key} (seed {seed}) failed: {exc}") from exc
    rec = run.record
    rec.extras["bench"] = {"entry": entry.key, "options": _jsonable(options),
                           "elapsed_s": round(time.perf_counter() - t0, 2), "torch_threads": torch.get_num_threads()}
    rec.save(path)
    return rec.to_dict()


# ------------------------------------------------------------------------------------- plan, execute, assemble


@dataclass
class BenchPlan:
    """What one bench will do: the rows and seeds asked for, each row's options, the saved runs it reuses, the
    (seed, row) runs still to do (seed-major), and the folder every record goes to."""

    dataset: str
    profile: str
    seeds: list[int]
    entries: list[BenchEntry]  # the rows asked for, in the order given
    options: dict[str, dict[str, Any]]  # row key -> its options: the row's own, then the overrides
    record_dir: Path
    reused: dict[str, list[ResultRecord]]  # row key -> the saved runs reused (matching seed and options)
    todo: list[tuple[int, BenchEntry, Path]]  # (seed, row, record path) still to run


@dataclass
class BenchRuns:
    """What a bench holds once its runs are done: each row's records (reused and new), the seeds the time budget
    skipped, and the teacher they were measured against."""

    done: dict[str, list[ResultRecord]]
    skipped: dict[str, list[int]]
    teacher: dict[str, Any]


def plan_bench(dataset: str, profile: str | None, seeds: Sequence[int], record_dir: str | Path, *,
               entries: Sequence[str | BenchEntry] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
               force: bool = False, log: Callable[[str], None] | None = print) -> BenchPlan:
    """Check the request and decide the runs: each (seed, row) whose record in ``record_dir`` matches (same entry,
    profile, data set, seed and options) is reused unless ``force``; the others are to run. Nothing runs here."""
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
    options = {e.key: {**e.option_dict(), **overrides.get(e.key, {})} for e in chosen}
    reused: dict[str, list[ResultRecord]] = {e.key: [] for e in chosen}
    todo: list[tuple[int, BenchEntry, Path]] = []
    for seed, e in [(s, e) for s in seeds for e in chosen]:
        path = record_path(record_dir, e.key, seed)
        saved = None if force else load_saved_run(path, e.key, prof.name, dataset, seed, options[e.key],
                                                  e.teacher_arch(default_teacher_arch(dataset)))
        if saved is not None:
            reused[e.key].append(saved)
            say(f"[bench] {e.key} seed {seed}: reusing {path}")
        else:
            todo.append((seed, e, path))
    return BenchPlan(dataset, prof.name, seeds, chosen, options, Path(record_dir), reused, todo)


def estimate_entry(entry: BenchEntry, options: dict[str, Any], dataset: str, profile: str,
                   device: torch.device | str | None = None) -> Estimate | None:
    """The cost model's estimate of one run of a row with ``options`` on this device (None: it has none)."""
    try:
        return estimate_run(entry.method, dataset=dataset, profile=profile, device=device,
                            teacher_arch=entry.teacher or None, student_arch=entry.student or None, **options)
    except LabkitError:
        return None


def estimate_plan(plan: BenchPlan, device: torch.device | str | None = None) -> dict[str, float | None]:
    """Each row still to run: the cost model's seconds for one of its runs on this device (None: no estimate)."""
    out: dict[str, float | None] = {}
    for _, e, _ in plan.todo:
        if e.key not in out:
            est = estimate_entry(e, plan.options[e.key], plan.dataset, plan.profile, device)
            out[e.key] = est.total_s if est else None
    return out


def describe_bench_plan(plan: BenchPlan, per_run: dict[str, float | None], device: torch.device, jobs: int = 1) -> str:
    """'29 runs to do, about 2.1 h on this CPU (2 threads) one at a time; 3 saved runs reused'."""
    todo = len(plan.todo)
    known = [per_run.get(e.key) for _, e, _ in plan.todo]
    total = sum(t for t in known if t is not None)
    text = f"{todo} {'run' if todo == 1 else 'runs'} to do"
    if any(t is not None for t in known):
        text += f", {describe_seconds(total, device_label(device))} one at a time"
        text += f" (about {total / jobs / 60:.1f} min as {jobs} jobs at once)" if jobs > 1 else ""
        missing = sum(t is None for t in known)
        text += f", {missing} of them without an estimate" if missing else ""
    reused = sum(len(v) for v in plan.reused.values())
    return text + (f"; {reused} saved {'run' if reused == 1 else 'runs'} reused" if reused else "")


def fits(entry: BenchEntry, options: dict[str, Any], dataset: str, profile: str, device: torch.device,
         deadline: float, say: Callable[[str], None]) -> bool:
    """Whether a row's estimate (:func:`~labkit.studies.cost.estimate_run`) fits the time left before ``deadline``.
    Once the deadline has passed nothing fits, and no estimate is made (it may have to calibrate)."""
    if deadline <= time.time():
        return False
    est = estimate_entry(entry, options, dataset, profile, device)
    if est is None:  # no estimate: the deadline alone decides, as before
        return True
    left = deadline - time.time()
    if est.total_s <= left:
        return True
    say(f"[bench] {entry.key}: its estimate ({est.describe()}) does not fit the {max(left, 0):.0f} s left")
    return False


def execute_bench(plan: BenchPlan, *, device: torch.device | str | None = None, progress: bool = True,
                  jobs: int = 1, threads_per_job: int | None = None, time_budget_s: float | None = None,
                  log: Callable[[str], None] | None = print) -> BenchRuns:
    """Load the teacher (so every run, and every worker process, finds it ready), then run the plan's runs, saving
    each record as it finishes; ``jobs`` > 1 runs that many at once in worker processes with ``threads_per_job``
    torch threads each. With ``time_budget_s``, a run (one job) starts only if its cost-model estimate fits the time
    left; runs still waiting once it has passed are skipped."""
    say = log or (lambda _msg: None)
    dev = torch.device(device) if device is not None else pick_device()
    teacher = get_teacher(plan.dataset, device=dev, progress=progress)
    for arch in sorted({e.teacher for e in plan.entries if e.teacher}):  # rows on another teacher: load it once too
        get_teacher(plan.dataset, arch, device=dev, progress=progress)
    done = {key: list(recs) for key, recs in plan.reused.items()}
    skipped: dict[str, list[int]] = {e.key: [] for e in plan.entries}
    deadline = None if time_budget_s is None else time.time() + time_budget_s
    todo, options, dataset, profile = plan.todo, plan.options, plan.dataset, plan.profile

    def finish(seed: int, e: BenchEntry, path: Path, result: dict[str, Any] | None) -> None:
        if result is None:
            skipped[e.key].append(seed)
            say(f"[bench] {e.key} seed {seed}: skipped (time budget of {time_budget_s:.0f} s used up)")
            return
        rec = ResultRecord.from_dict(result)
        done[e.key].append(rec)
        say(f"[bench] {e.key} seed {seed}: test {100 * rec.student_acc:.2f}%, agreement "
            f"{100 * (rec.agreement or 0.0):.2f}%, {rec.queries:,} queries, transfer set {rec.transfer_set_size:,}, "
            f"{rec.wall_s:.1f} s (run {run_elapsed_s(result):.1f} s) -> {path}")

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="bench", unit="run")
    try:
        if jobs <= 1 or len(todo) <= 1:
            for seed, e, path in todo:
                if deadline is not None and not fits(e, options[e.key], dataset, profile, dev, deadline, say):
                    finish(seed, e, path, None)
                else:
                    finish(seed, e, path, _run_one(e, options[e.key], dataset, profile, seed, str(dev), progress,
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
                futures = {pool.submit(_run_one, e, options[e.key], dataset, profile, seed, str(dev), False,
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
    return BenchRuns(done, skipped, {"arch": teacher.spec.arch, "test_acc": teacher.test_acc,
                                     "val_acc": teacher.val_acc, "source": teacher.source})


def assemble_board(plan: BenchPlan, runs: BenchRuns, *, device: torch.device | str | None = None, note: str = "",
                   keep_others: bool = False, started: float | None = None) -> Leaderboard:
    """Summarise every row into the :class:`Leaderboard`, in the lab's order (:data:`BENCH_KEYS`): ``ok``, ``partial``
    (some seeds skipped by the time budget) or ``skipped``. With ``keep_others``, every other row whose saved runs in
    the plan's folder cover all its seeds (with the row's own options) joins the board, never re-run.
    ``started``: the :func:`time.perf_counter` value the bench started at (its wall time; default: now)."""
    dataset, profile, seeds = plan.dataset, plan.profile, plan.seeds
    chosen, options = list(plan.entries), dict(plan.options)
    done, skipped = dict(runs.done), dict(runs.skipped)
    if keep_others:  # the rows not asked for keep their saved runs (never re-run here)
        for e in BENCH_ENTRIES:
            if e.key in done:
                continue
            saved_runs = [r for r in (load_saved_run(record_path(plan.record_dir, e.key, seed), e.key, profile,
                                                     dataset, seed, e.option_dict(),
                                                     e.teacher_arch(default_teacher_arch(dataset))) for seed in seeds)
                          if r is not None]
            if len(saved_runs) == len(seeds):  # a kept row has every seed asked for, or it is left out
                chosen.append(e)
                options[e.key], done[e.key], skipped[e.key] = e.option_dict(), saved_runs, []
    for key in done:
        done[key] = sorted(done[key], key=lambda r: r.seed)
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
    board_runs = [r.to_dict() for e in summaries for r in done[e.key]]
    dev = torch.device(device) if device is not None else pick_device()
    board = Leaderboard(
        dataset=dataset, profile=profile, seeds=seeds, entries=summaries, runs=board_runs, teacher=dict(runs.teacher),
        student_arch=str(board_runs[0]["student_arch"]) if board_runs else default_student_arch(dataset),
        environment=environment_info(dev, note), created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"),
        bench_wall_s=round(time.perf_counter() - (started if started is not None else time.perf_counter()), 2),
        total_run_s=round(sum(run_elapsed_s(r) for r in board_runs), 2),
    )
    board.teacher.setdefault("arch", default_teacher_arch(dataset))
    return board


def run_bench(dataset: str = "fashion-mnist", profile: str | None = None, seeds: Sequence[int] = (0,), *,
              entries: Sequence[str | BenchEntry] | None = None, out_dir: str | Path | None = None,
              force: bool = False, overrides: dict[str, dict[str, Any]] | None = None,
              time_budget_s: float | None = None, device: torch.device | str | None = None, progress: bool = True,
              note: str = "", save: bool = True, jobs: int = 1, threads_per_job: int | None = None,
              keep_others: bool = True, log: Callable[[str], None] | None = print) -> Leaderboard:
    """Run every entry for every seed (seed-major), saving each run as it finishes; return the :class:`Leaderboard`.

    :func:`plan_bench`, then :func:`execute_bench`, then :func:`assemble_board`. Entries run in the order given; the
    leaderboard lists them in the lab's order (:data:`BENCH_KEYS`).

    * Records go to ``<out_dir>/bench/<profile>/<dataset>/`` (``out_dir``: the results folder, default
      :func:`labkit.core.paths.results_dir`).
    * A saved run with the same entry, profile, data set, seed and options is reused unless ``force``.
    * ``time_budget_s``: once this invocation has run that long, the remaining runs are skipped (their
      rows say ``skipped`` or ``partial``); the default runs everything.
    * ``overrides``: extra options per entry key (they also reach :func:`run_method`'s own keywords,
      e.g. ``train_limit`` or ``budget``).
    * ``jobs`` > 1 runs that many (entry, seed) runs at once in worker processes, each with
      ``threads_per_job`` torch threads (default: CPU cores / jobs); records are saved as each finishes.
    * ``save`` writes ``leaderboard.json`` / ``.md`` beside the records.
    * With ``entries`` (``--only``), the other rows keep the runs saved there (matching seeds and options),
      so refreshing a few rows never drops the rest of the board; ``keep_others=False`` lists only ``entries``.
    """
    say = log or (lambda _msg: None)
    dataset, prof = canonical_name(dataset), get_profile(profile)
    started = time.perf_counter()
    plan = plan_bench(dataset, prof.name, seeds, study_dir(BENCH, prof.name, dataset, out_dir), entries=entries,
                      overrides=overrides, force=force, log=log)
    dev = torch.device(device) if device is not None else pick_device()
    if plan.todo and time_budget_s is None:  # a budgeted bench estimates each run as it comes (fits)
        say(f"[bench] {describe_bench_plan(plan, estimate_plan(plan, dev), dev, jobs)} (estimate)")
    elif plan.todo:
        n = len(plan.todo)
        say(f"[bench] {n} {'run' if n == 1 else 'runs'} to do within {time_budget_s:.0f} s: each starts only if its "
            "estimate fits the time left")
    runs = execute_bench(plan, device=dev, progress=progress, jobs=jobs, threads_per_job=threads_per_job,
                         time_budget_s=time_budget_s, log=log)
    board = assemble_board(plan, runs, device=dev, note=note, keep_others=entries is not None and keep_others,
                           started=started)
    if save:
        jpath, mpath = board.save(plan.record_dir)
        say(f"[bench] wrote {jpath} and {mpath}")
    return board


def load_or_run(dataset: str = "fashion-mnist", profile: str | None = None, seeds: Sequence[int] = (0,), *,
                use_saved: bool = True, entries: Sequence[str] | None = None, time_budget_s: float | None = None,
                progress: bool = True, log: Callable[[str], None] | None = print) -> Leaderboard:
    """For notebooks: the saved board in ``results/bench/<profile>/<dataset>/`` if it matches, otherwise a fresh
    bench.

    A fresh bench runs in a temporary folder, so it never overwrites the committed results.
    """
    if use_saved:
        board = saved_leaderboard(dataset, profile)
        if board is not None:
            if log:
                log(f"Loaded the saved leaderboard ({board.profile}, seeds {board.seeds}, created "
                    f"{board.created_utc}) from {study_dir(BENCH, board.profile, board.dataset) / LEADERBOARD_JSON}.")
            return board
    tmp = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    if log:
        log(f"No saved leaderboard for {canonical_name(dataset)} / {get_profile(profile).name}: running the bench "
            f"now (records in {tmp}).")
    return run_bench(dataset, profile, seeds, entries=entries, out_dir=tmp, time_budget_s=time_budget_s,
                     progress=progress, log=log)
