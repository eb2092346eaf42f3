"""The bench: every method on one teacher and one student, each seed saved as it finishes.

:func:`run_bench` runs each :class:`BenchEntry` (a method plus options, e.g. ``db3kd`` with
``measure="mbd"``) for each seed through :func:`labkit.studies.runner.run_method`, saves every (entry, seed)
record as soon as it finishes (``<out_dir>/<profile>/<dataset>/<entry>-seed<k>.json``) so an
interrupted bench resumes where it stopped (:func:`load_saved_run`), optionally on several worker
processes, and returns a :class:`~labkit.studies.leaderboard.Leaderboard` (the table, its files and its
analysis live in :mod:`labkit.studies.leaderboard`). ``python -m labkit bench`` does all of it from the shell.
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

from labkit.core import paths
from labkit.core.data import canonical_name
from labkit.core.device import pick_device
from labkit.core.errors import LabkitError, UnknownNameError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.core.teachers import default_student_arch, default_teacher_arch, get_teacher
from labkit.studies.leaderboard import (
    LEADERBOARD_JSON,
    BenchError,
    Leaderboard,
    environment_info,
    run_elapsed_s,
    saved_leaderboard,
    summarize_entry,
)
from labkit.studies.runner import run_method

__all__ = ["BENCH_ENTRIES", "BENCH_KEYS", "LADDER_RUNGS", "QUICK_ORDER", "BenchEntry", "BenchError", "board_dir",
           "get_entries",
           "load_or_run", "load_saved_run", "parse_overrides", "run_bench", "run_path"]


@dataclass(frozen=True)
class BenchEntry:
    """One row of the leaderboard: a method, the options it runs with, and where it sits on its method's ladder."""

    key: str  # row name, e.g. "db3kd-paper"; "+x" names a lab addition x the row contains
    method: str  # registry name for run_method, e.g. "db3kd"
    title: str
    access: str  # the teacher access the method is built for (the record's own value wins)
    data_access: str  # labeled | unlabeled | none
    options: tuple[tuple[str, Any], ...] = ()
    family: str = ""  # the ladder the row belongs to (one per paper), e.g. "zsdb3kd"
    rung: str = "paper"  # paper | baseline | addition | combined (see LADDER_RUNGS)
    note: str = ""  # one line: what the row's transfer set holds

    def option_dict(self) -> dict[str, Any]:
        """The options as a dict (for :func:`run_method`)."""
        return dict(self.options)


#: The rungs of a method's ladder, in the order the leaderboard shows them.
LADDER_RUNGS: dict[str, str] = {
    "paper": "the paper's mechanism alone (sizes reduced to the profile)",
    "baseline": "a baseline that isolates one ingredient (no paper's mechanism, or one part of it)",
    "addition": "the paper's mechanism plus one lab addition",
    "combined": "the lab's combined recipe (the profile's default ingredients)",
}
_SOFT_ONLY = ("distance-soft-labels",)
_E = BenchEntry
#: Every entry of the lab's leaderboard, ladder by ladder, in the order the table shows them.
BENCH_ENTRIES: tuple[BenchEntry, ...] = (
    _E("student", "student", "Student alone (CE on labels, no teacher)", "none", "labeled", (), "reference", "paper",
       "every labelled training image, cross-entropy on the true labels"),
    _E("kd", "kd", "Plain KD (Hinton), all training data", "score", "labeled", (), "kd", "paper",
       "all labelled training images, each answered once by the score box"),
    # ---- DB3KD (labelled data, decision box)
    _E("db3kd-paper", "db3kd", "DB3KD as published: every row soft-labelled by BD", "decision", "labeled",
       (("variant", "paper"), ("measure", "bd")), "db3kd", "paper",
       "distance-soft-labels only: every training image it uses gets a BD soft label (images sized for the profile)"),
    _E("db3kd-soft-only", "db3kd", "DB3KD's soft-labelled images alone (BD)", "decision", "labeled",
       (("measure", "bd"), ("ingredients", _SOFT_ONLY)), "db3kd", "baseline",
       "distance-soft-labels only: the soft-labelled images of the combined rows, nothing else"),
    _E("db3kd-true-labels-only", "db3kd", "DB3KD's true-label rows alone (CE, no teacher)", "none", "labeled",
       (("ingredients", ("true-label-rows",)),), "db3kd", "baseline",
       "true-label-rows only: the combined rows' images, cross-entropy on the true labels, no query"),
    _E("db3kd-bd+true-labels", "db3kd", "DB3KD (BD) + true-label rows", "decision", "labeled",
       (("measure", "bd"),), "db3kd", "combined",
       "BD soft-labelled images + true-label rows (a lab addition: CE on the true labels of more images)"),
    _E("db3kd-mbd+true-labels", "db3kd", "DB3KD (MBD) + true-label rows", "decision", "labeled",
       (("measure", "mbd"),), "db3kd", "combined",
       "MBD soft-labelled images + true-label rows (a lab addition: CE on the true labels of more images)"),
    # ---- ZSKD (no data, white box)
    _E("zskd-paper", "zskd", "ZSKD as published: Data Impressions only", "white", "none",
       (("variant", "paper"),), "zskd", "paper",
       "impressions only, β ∈ {1, 0.1} applied after the normalisation as the paper describes"),
    _E("zskd-authors-code", "zskd", "ZSKD as the authors' code runs it: β cancels (all β = 1)", "white", "none",
       (("variant", "paper"), ("beta_mode", "authors")), "zskd", "paper",
       "impressions only, β scaled before the normalisation (the authors' code), so every impression has β = 1"),
    _E("zskd-copies", "zskd", "ZSKD + relabelled dark-border/blur copies", "white", "none", (), "zskd", "combined",
       "impressions + one relabelled dark-border/blur copy each (a lab addition tuned on the labelled validation "
       "split)"),
    # ---- ZSDB3KD (no data, decision box)
    _E("zsdb3kd-paper", "zsdb3kd", "ZSDB3KD as published: the authors' noise, pseudo-samples only", "decision",
       "none", (("variant", "paper"),), "zsdb3kd", "paper",
       "pseudo-samples only, grown from the authors' noise, with their DB3 soft labels"),
    _E("noise-kd", "noise-kd", "Naive KD on noise: teacher-labelled noise bank alone, hard labels", "decision",
       "none", (), "zsdb3kd", "baseline",
       "noise-bank only: the dead-leaves draws the combined row also draws, class-balanced, CE on class ids"),
    _E("zsdb3kd+dead-leaves", "zsdb3kd", "ZSDB3KD + dead-leaves starting noise", "decision", "none",
       (("variant", "paper"), ("noise", "dead-leaves")), "zsdb3kd", "addition",
       "pseudo-samples only, grown from the lab's dead-leaves noise instead of the authors'"),
    _E("zsdb3kd+bank", "zsdb3kd", "ZSDB3KD + dead-leaves noise + paths + noise bank", "decision", "none", (),
       "zsdb3kd", "combined",
       "pseudo-samples + their paths + a class-balanced bank of teacher-labelled dead-leaves noise (lab additions)"),
    # ---- FS-BBT (a few unlabelled images, score box)
    _E("fsbbt", "fsbbt", "FS-BBT, few-shot + MixUp + CVAE", "score", "unlabeled", (), "fsbbt", "paper",
       "N few-shot images + their MixUps + CVAE samples, all answered by the score box (the paper's recipe)"),
    # ---- MEKD (10% unlabelled edge data, score or decision box)
    _E("mekd-soft-paper", "mekd", "MEKD as published, soft responses: generated images only", "score", "unlabeled",
       (("variant", "paper"), ("response", "soft")), "mekd", "paper",
       "generated images only; G trained with the authors' information term"),
    _E("mekd-hard-paper", "mekd", "MEKD as published, hard responses: generated images only", "decision",
       "unlabeled", (("variant", "paper"), ("response", "hard")), "mekd", "paper",
       "generated images only; G trained with the authors' information term"),
    _E("mekd-soft+imitation", "mekd", "MEKD (soft) + the lab's teacher-imitation information term", "score",
       "unlabeled", (("response", "soft"), ("ingredients", ("generated",))), "mekd", "addition",
       "generated images only; G trained with the lab's teacher-imitation term instead of the authors'"),
    _E("mekd-hard+imitation", "mekd", "MEKD (hard) + the lab's teacher-imitation information term", "decision",
       "unlabeled", (("response", "hard"), ("ingredients", ("generated",))), "mekd", "addition",
       "generated images only; G trained with the lab's teacher-imitation term instead of the authors'"),
    _E("kd-edge", "kd-edge", "Plain KD on MEKD's 10% edge subset (soft answers)", "score", "unlabeled", (), "mekd",
       "baseline", "edge-images only: the edge subset answered by the score box, plain KD, MEKD's student recipe"),
    _E("kd-edge-hard", "kd-edge", "Plain KD on MEKD's 10% edge subset (one-hot teacher answers)", "decision",
       "unlabeled", (("response", "hard"),), "mekd", "baseline",
       "edge-images only: the edge subset answered by the decision box, CE on the class ids"),
    _E("mekd-soft+edge", "mekd", "MEKD (soft) + teacher-imitation + edge images", "score", "unlabeled",
       (("response", "soft"),), "mekd", "combined",
       "generated images + the edge images answered by the box (lab additions: edge images, teacher-imitation)"),
    _E("mekd-hard+edge", "mekd", "MEKD (hard) + teacher-imitation + edge images", "decision", "unlabeled",
       (("response", "hard"),), "mekd", "combined",
       "generated images + the edge images answered by the box (lab additions: edge images, teacher-imitation)"),
    # ---- IDEAL (after the seed papers: decision box, no data)
    _E("ideal", "ideal", "IDEAL: a generator trained against the student, one hard-label query per image",
       "decision", "none", (), "ideal", "paper",
       "generated images only: every round's batch labelled once by the decision box (no re-asking)"),
    _E("ideal+round-samples", "ideal", "IDEAL + round samples: 1,500 more draws from each round's generator",
       "decision", "none", (("variant", "round-samples"),), "ideal", "addition",
       "generated best batches + round samples (a lab addition: fresh latents through each round's trained "
       "generator, labelled once), 40 rounds of 2,000 images"),
)
BENCH_KEYS: tuple[str, ...] = tuple(e.key for e in BENCH_ENTRIES)
#: A running order for a time-limited bench (notebook 08 in smoke): cheap runs first, one per access level early.
QUICK_ORDER: tuple[str, ...] = ("fsbbt", "student", "kd-edge", "mekd-hard+edge", "kd", "db3kd-mbd+true-labels",
                                "zskd-copies", "noise-kd", "mekd-soft+edge", "zsdb3kd+bank", "db3kd-bd+true-labels",
                                "zskd-paper", "zsdb3kd-paper", "mekd-soft-paper", "db3kd-paper", "kd-edge-hard",
                                "db3kd-soft-only", "db3kd-true-labels-only", "zskd-authors-code",
                                "zsdb3kd+dead-leaves", "mekd-hard-paper", "mekd-soft+imitation",
                                "mekd-hard+imitation", "ideal", "ideal+round-samples")
assert sorted(QUICK_ORDER) == sorted(BENCH_KEYS)


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


def board_dir(out_dir: str | Path, profile: str, dataset: str) -> Path:
    """Where a bench writes its leaderboard: ``out_dir``, unless that already holds the board of another profile or
    data set (the committed laptop board in ``results/``); then ``<out_dir>/<profile>/<dataset>/``, beside the runs."""
    out_dir = Path(out_dir)
    existing = out_dir / LEADERBOARD_JSON
    if existing.exists():
        try:
            doc = json.loads(existing.read_text())
        except json.JSONDecodeError:
            return out_dir  # a broken file is replaced
        if isinstance(doc, dict) and (doc.get("profile"), doc.get("dataset")) != (profile, dataset):
            return out_dir / profile / dataset
    return out_dir


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
              keep_others: bool = True, log: Callable[[str], None] | None = print) -> Leaderboard:
    """Run every entry for every seed (seed-major), saving each run as it finishes; return the :class:`Leaderboard`.

    Entries run in the order given; the leaderboard lists them in the lab's order (:data:`BENCH_KEYS`).

    * A saved run with the same entry, profile, data set, seed and options is reused unless ``force``.
    * ``time_budget_s``: once this invocation has run that long, the remaining runs are skipped (their
      rows say ``skipped`` or ``partial``); the default runs everything.
    * ``overrides``: extra options per entry key (they also reach :func:`run_method`'s own keywords,
      e.g. ``train_limit`` or ``budget``).
    * ``jobs`` > 1 runs that many (entry, seed) runs at once in worker processes, each with
      ``threads_per_job`` torch threads (default: CPU cores / jobs); records are saved as each finishes.
    * ``save`` writes ``leaderboard.json`` / ``.md`` into ``out_dir`` (default
      :func:`labkit.core.paths.results_dir`), or
      beside the runs where ``out_dir`` holds another profile's board (:func:`board_dir`).
    * With ``entries`` (``--only``), the other rows keep the runs saved in ``out_dir`` (matching seeds and options),
      so refreshing a few rows never drops the rest of the board; ``keep_others=False`` lists only ``entries``.
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
    if entries is not None and keep_others:  # the rows not asked for keep their saved runs (never re-run here)
        for e in BENCH_ENTRIES:
            if e.key in done:
                continue
            saved_runs = [r for r in (load_saved_run(run_path(out_dir, prof.name, dataset, e.key, seed), e.key,
                                                     prof.name, dataset, seed, e.option_dict()) for seed in seeds)
                          if r is not None]
            if len(saved_runs) == len(seeds):  # a kept row has every seed asked for, or it is left out
                chosen.append(e)
                options[e.key], done[e.key], skipped[e.key] = e.option_dict(), saved_runs, []
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
        jpath, mpath = board.save(board_dir(out_dir, prof.name, dataset))
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
