"""The bench: its rows as a keyword table, a tiny real bench run, its files, resume, plan/execute/assemble, the CLI,
overrides, time budget and worker processes.

The table itself (statistics, schema, Markdown, figures, analysis) is tested on hand-made records in
``tests/test_leaderboard.py``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit.core.errors import UnknownNameError
from labkit.core.models import build_model
from labkit.studies import bench, bench_rows, leaderboard
from labkit.studies.results_layout import BENCH, stray_files, study_dir

TINY = {"train_limit": 400, "epochs": 1}  # real runs, tiny sizes: the files and the resume are what is tested here
ENTRIES = ["student", "kd"]
SEEDS = [0, 1]
DATA = "toy2d-blobs-3"  # its teacher is committed in labkit/core/shipped/teachers, so it loads at once


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-entry × 2-seed smoke bench on a toy data set, written to a temporary folder."""
    out = tmp_path_factory.mktemp("bench")
    bench.run_bench(DATA, "smoke", SEEDS, entries=ENTRIES, out_dir=out, device="cpu", progress=False,
                    overrides={k: dict(TINY) for k in ENTRIES}, note="test", log=None)
    return out


def _board_dir(out_dir: Path, profile: str = "smoke") -> Path:
    """Where a bench writes its board and runs: ``<out_dir>/bench/<profile>/<DATA>/``."""
    return study_dir(BENCH, profile, DATA, out_dir)


def test_result_files_follow_the_schema(bench_dir: Path) -> None:
    doc = json.loads((_board_dir(bench_dir) / leaderboard.LEADERBOARD_JSON).read_text())
    assert leaderboard.validate_leaderboard(doc) == []
    assert doc["dataset"] == DATA and doc["profile"] == "smoke" and doc["seeds"] == SEEDS
    assert [e["key"] for e in doc["entries"]] == ENTRIES
    assert len(doc["runs"]) == len(ENTRIES) * len(SEEDS)
    env = doc["environment"]
    assert env["device"] == "cpu" and env["versions"]["torch"] and env["machine"] and env["note"] == "test"
    assert 0.5 < doc["teacher"]["test_acc"] <= 1.0
    by_key = {e["key"]: e for e in doc["entries"]}
    for e in by_key.values():
        assert e["status"] == "ok" and sorted(e["seeds"]) == SEEDS
        for stat in ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s"):
            assert e[stat]["n"] == 2 and e[stat]["std"] is not None
            assert min(e[stat]["values"]) <= e[stat]["mean"] <= max(e[stat]["values"])
        assert e["transfer_set_size"]["mean"] == TINY["train_limit"]
        assert e["reported"] is None and e["reported_note"]  # the papers have no toy figures
    assert by_key["student"]["access"] == "none" and by_key["student"]["queries"]["values"] == [0, 0]
    # plain KD asks the teacher exactly once per transfer-set image, all of it for its one ingredient
    assert by_key["kd"]["access"] == "score" and by_key["kd"]["queries"]["values"] == [TINY["train_limit"]] * 2
    assert by_key["kd"]["ingredients"] == {"labelled-data": {"rows": 400, "holdout_rows": 0, "queries": 400}}
    assert by_key["student"]["ingredients"]["labelled-data"]["queries"] == 0
    # the Markdown table has every entry, the reported column, the ingredients and where it ran
    md = (_board_dir(bench_dir) / leaderboard.LEADERBOARD_MD).read_text()
    assert "| student |" in md and "| kd |" in md and "**reported**" in md and "torch" in md
    assert "Ingredients: labelled-data (400 rows, 400 queries)" in md
    # each run was saved as it finished, in the per-run layout
    for key in ENTRIES:
        for seed in SEEDS:
            rec = json.loads(bench.run_path(bench_dir, "smoke", DATA, key, seed).read_text())
            assert rec["seed"] == seed and rec["extras"]["bench"]["entry"] == key


def test_resume_reuses_saved_runs_and_options_must_match(bench_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in _board_dir(bench_dir).rglob("*-seed*.json")}
    lines: list[str] = []
    board = bench.run_bench(DATA, "smoke", SEEDS, entries=ENTRIES, out_dir=bench_dir, device="cpu",
                            progress=False, overrides={k: dict(TINY) for k in ENTRIES}, log=lines.append, save=False)
    assert sum("reusing" in line for line in lines) == 4
    assert before == {p: p.stat().st_mtime_ns for p in _board_dir(bench_dir).rglob("*-seed*.json")}
    assert board.entry("kd").ingredients  # resumed records keep their ingredients
    path = bench.run_path(bench_dir, "smoke", DATA, "kd", 0)
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY)) is not None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, {**TINY, "epochs": 2}) is None
    assert bench.load_saved_run(path, "kd", "laptop", DATA, 0, dict(TINY)) is None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 1, dict(TINY)) is None
    assert bench.load_saved_run(path, "student", "smoke", DATA, 0, dict(TINY)) is None
    saved_teacher = bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY)).teacher_arch  # type: ignore[union-attr]
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY), saved_teacher) is not None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY), "lenet5-db3") is None  # another teacher


def test_cli_bench_reuses_runs_and_writes_files(bench_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.studies.cli import main

    argv = ["bench", "--dataset", DATA, "--profile", "smoke", "--seeds", *map(str, SEEDS), "--only", *ENTRIES,
            "--out-dir", str(bench_dir), "--no-progress", "--device", "cpu"]
    for k in ENTRIES:
        for option, value in TINY.items():
            argv += ["--set", f"{k}.{option.replace('_', '-')}={value}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "| kd |" in out
    doc = json.loads((_board_dir(bench_dir) / leaderboard.LEADERBOARD_JSON).read_text())
    assert leaderboard.validate_leaderboard(doc) == []


def test_a_bench_says_its_estimate_first_and_estimate_runs_nothing(bench_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Before its first run a bench says how many runs it will do and what they should take (the cost model);
    ``bench --estimate`` prints each row's estimate and runs nothing."""
    from labkit.studies.cli import main

    lines: list[str] = []
    bench.run_bench(DATA, "smoke", [0], entries=["kd"], out_dir=tmp_path, device="cpu", progress=False,
                    overrides={"kd": dict(TINY)}, log=lines.append, save=False)
    assert re.fullmatch(r"\[bench\] 1 run to do, about \d+ s on this CPU \(\d+ threads?\) one at a time \(estimate\)",
                        lines[0]), lines[0]
    lines.clear()
    bench.run_bench(DATA, "smoke", [0], entries=ENTRIES, out_dir=tmp_path / "b", device="cpu", progress=False,
                    overrides={k: dict(TINY) for k in ENTRIES}, time_budget_s=0.0, log=lines.append, save=False)
    assert lines[0] == "[bench] 2 runs to do within 0 s: each starts only if its estimate fits the time left"
    argv = ["bench", "--dataset", DATA, "--profile", "smoke", "--seeds", "0", "2", "--only", *ENTRIES,
            "--out-dir", str(bench_dir), "--device", "cpu", "--estimate"]
    for k in ENTRIES:
        argv += [f"--set={k}.{option.replace('_', '-')}={value}" for option, value in TINY.items()]
    before = sorted(p.name for p in _board_dir(bench_dir).iterdir())
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^kd: 1 to run, \d+ s a run$", out, re.M) and \
        re.search(r"2 runs to do, about .* one at a time; 2 saved runs reused \(estimate; nothing ran\)", out), out
    assert sorted(p.name for p in _board_dir(bench_dir).iterdir()) == before


def test_time_budget_skips_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs waiting once the budget is spent are skipped without an estimate (which may have to calibrate)."""
    estimated: list[str] = []
    real = bench.estimate_entry
    monkeypatch.setattr(bench, "estimate_entry", lambda e, *a, **k: estimated.append(e.key) or real(e, *a, **k))
    board = bench.run_bench(DATA, "smoke", [0], entries=ENTRIES, out_dir=tmp_path, device="cpu", progress=False,
                            overrides={k: dict(TINY) for k in ENTRIES}, time_budget_s=0.0, log=None)
    assert estimated == []
    assert [e.status for e in board.entries] == ["skipped", "skipped"] and not board.runs
    assert leaderboard.validate_leaderboard(board.to_dict()) == []
    assert "| kd (skipped) |" in board.to_markdown()


def test_a_failing_run_names_its_entry(tmp_path: Path) -> None:
    with pytest.raises(bench.BenchError, match=r"kd \(seed 0\) failed"):
        bench.run_bench(DATA, "smoke", [0], entries=["kd"], out_dir=tmp_path, device="cpu", progress=False,
                        overrides={"kd": {"epochs": 0}}, log=None)
    assert not (_board_dir(tmp_path) / leaderboard.LEADERBOARD_JSON).exists()


def test_a_row_on_another_teacher_runs_on_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A row naming its teacher and student hands both to the runner; a row naming none leaves the defaults."""
    asked: list[tuple[str | None, str | None]] = []

    class Stop(Exception):
        pass

    def fake_run(method: str, **kw: object) -> None:
        asked.append((kw.get("teacher_arch"), kw.get("student_arch")))  # type: ignore[arg-type]
        raise Stop

    monkeypatch.setattr(bench, "run_method", fake_run)
    for key in ("zsdb3kd-paper-db3-teacher", "zsdb3kd-paper", "ideal-public-code"):
        entry = bench.get_entries([key])[0]
        with pytest.raises(Stop):
            bench._run_one(entry, entry.option_dict(), "fashion-mnist", "smoke", 0, "cpu", False,
                           str(tmp_path / "r.json"), None)
    assert asked == [("lenet5-db3", "lenet5-db3-half"), (None, None), ("ideal-cnn", "ideal-cnn")]


def test_entries_and_overrides() -> None:
    paper_rows = {"kd", "db3kd-paper", "zskd-paper", "zsdb3kd-paper", "fsbbt", "mekd-soft-paper", "mekd-hard-paper"}
    baselines = {"noise-kd", "kd-edge-hard", "zskd-copies", "db3kd-soft-only"}  # zskd-copies is ZSKD's combined row
    combined = {"zsdb3kd+bank", "db3kd-bd+true-labels", "db3kd-mbd+true-labels", "mekd-soft+edge",
                "mekd-hard+edge"}
    assert paper_rows | baselines | combined <= set(bench.BENCH_KEYS)
    for e in bench.BENCH_ENTRIES:
        assert e.rung in bench.LADDER_RUNGS and e.family and e.note, e.key
        assert "+" not in e.key or e.rung in ("addition", "combined"), e.key  # a '+' names a lab addition
        if e.key.endswith("-paper"):
            assert e.rung == "paper" and e.option_dict().get("variant") == "paper", e.key
    assert bench.get_entries(["mekd_hard+edge"])[0].option_dict() == {"response": "hard"}
    with pytest.raises(UnknownNameError, match="bench entry"):
        bench.get_entries(["dfme"])
    got = bench.parse_overrides(["db3kd-paper.queries-per-sample=500", "kd.tau=2.5", "mekd-soft+edge.response=soft"])
    assert got == {"db3kd-paper": {"queries_per_sample": 500}, "kd": {"tau": 2.5},
                   "mekd-soft+edge": {"response": "soft"}}
    with pytest.raises(bench.BenchError, match="ENTRY.OPTION=VALUE"):
        bench.parse_overrides(["queries500"])
    with pytest.raises(UnknownNameError):
        bench.parse_overrides(["nope.epochs=5"])


def test_every_entry_option_is_a_config_field() -> None:
    """The options a bench entry passes exist in its method's config (a renamed option breaks here, not in a run)."""
    from labkit.methods.base import get_method

    for entry in bench.BENCH_ENTRIES:
        fields = get_method(entry.method).config_class.field_names()
        assert set(entry.option_dict()) <= set(fields), (entry.key, fields)


@pytest.mark.slow
def test_parallel_jobs_save_every_run(tmp_path: Path) -> None:
    lines: list[str] = []
    board = bench.run_bench(DATA, "smoke", [0], entries=["kd", "student"], out_dir=tmp_path, device="cpu",
                            progress=False, overrides={k: {"train_limit": 200, "epochs": 1} for k in ENTRIES},
                            jobs=2, threads_per_job=1, log=lines.append)
    assert any("2 worker processes" in line for line in lines)
    assert [e.key for e in board.entries] == ["student", "kd"]  # the lab's order, whatever order they ran in
    assert all(e.status == "ok" for e in board.entries)
    for key in ("student", "kd"):
        rec = json.loads(bench.run_path(tmp_path, "smoke", DATA, key, 0).read_text())
        assert rec["extras"]["bench"]["torch_threads"] == 1
    assert board.entry("kd").queries.mean == 200


def test_only_some_rows_keeps_the_others_saved_runs(bench_dir: Path, tmp_path: Path) -> None:
    """Refreshing a few rows (``--only``) must not drop the rest of a committed board."""
    for seed in SEEDS:  # a saved kd run made with the entry's own options (as the committed board's are)
        rec = json.loads(bench.run_path(bench_dir, "smoke", DATA, "kd", seed).read_text())
        rec["extras"]["bench"]["options"] = {}
        path = bench.run_path(tmp_path, "smoke", DATA, "kd", seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    board = bench.run_bench(DATA, "smoke", SEEDS, entries=["student"], out_dir=tmp_path, device="cpu",
                            progress=False, overrides={"student": dict(TINY)}, log=None)
    assert [e.key for e in board.entries] == ["student", "kd"]
    assert board.entry("kd").seeds == SEEDS and board.entry("kd").status == "ok"
    only = bench.run_bench(DATA, "smoke", SEEDS, entries=["student"], out_dir=tmp_path, device="cpu",
                           progress=False, overrides={"student": dict(TINY)}, keep_others=False, save=False, log=None)
    assert [e.key for e in only.entries] == ["student"]


def test_a_bench_writes_only_in_its_own_folder_and_never_guesses(bench_dir: Path, tmp_path: Path) -> None:
    """Every file a bench writes is in ``<out_dir>/bench/<profile>/<dataset>/``; a board of another profile saved in
    the same results folder is left alone (the old bench looked at which board existed to decide where to write)."""
    folder = _board_dir(bench_dir)
    assert stray_files(bench_dir) == []
    assert {p.parent for p in bench_dir.rglob("*") if p.is_file()} == {folder}
    assert {p.name for p in folder.iterdir()} == {leaderboard.LEADERBOARD_JSON, leaderboard.LEADERBOARD_MD} | {
        f"{k}-seed{s}.json" for k in ENTRIES for s in SEEDS}
    laptop = _board_dir(tmp_path, "laptop") / leaderboard.LEADERBOARD_JSON
    laptop.parent.mkdir(parents=True)
    laptop.write_text(json.dumps({"profile": "laptop", "dataset": DATA}))
    bench.run_bench(DATA, "smoke", [0], entries=["kd"], out_dir=tmp_path, device="cpu", progress=False,
                    time_budget_s=0.0, log=None)
    assert laptop.read_text() == json.dumps({"profile": "laptop", "dataset": DATA})
    assert (_board_dir(tmp_path) / leaderboard.LEADERBOARD_JSON).exists() and stray_files(tmp_path) == []
    # the control: a file outside the layout (the old root board) is reported
    (tmp_path / leaderboard.LEADERBOARD_JSON).write_text("{}")
    assert stray_files(tmp_path) == [tmp_path / leaderboard.LEADERBOARD_JSON]


# ------------------------------------------------------------------------------------- the rows as a table
#: The running order of a time-limited bench (notebook 08 in smoke) before the rows carried their cost rank.
RUNNING_ORDER = ("fsbbt", "student", "kd-edge", "mekd-hard+edge", "kd", "db3kd-mbd+true-labels", "zskd-copies",
                 "noise-kd", "mekd-soft+edge", "zsdb3kd+bank", "db3kd-bd+true-labels", "noise-kd-cnn", "zskd-paper",
                 "zsdb3kd-paper", "mekd-soft-paper", "db3kd-paper", "kd-edge-hard", "db3kd-soft-only",
                 "db3kd-true-labels-only", "zskd-beta-authors", "zsdb3kd+dead-leaves", "mekd-hard-paper",
                 "mekd-soft+imitation", "mekd-hard+imitation", "ideal", "ideal+round-samples",
                 "zsdb3kd-paper-db3-teacher", "zskd-authors-code", "ideal-cnn", "ideal-public-code",
                 "zskd-paper-augmented")


def test_every_row_declares_every_field() -> None:
    import dataclasses

    required = [f.name for f in dataclasses.fields(bench.BenchEntry) if f.name not in ("options", "teacher", "student")]
    with pytest.raises(TypeError):  # keywords only, nothing left to a default but the options
        bench.BenchEntry("kd", "kd")  # type: ignore[misc]
    for e in bench.BENCH_ENTRIES:
        for name in required:
            value = getattr(e, name)
            assert value not in ("", None) and isinstance(value, int if name == "cost_rank" else str), (e.key, name)
        assert all(isinstance(k, str) for k, _ in e.options), e.key
        assert e.family in bench_rows.FAMILY_TITLES and e.rung in bench.LADDER_RUNGS, e.key
        assert bool(e.teacher) == bool(e.student), e.key  # a row on another teacher names its student too
        for arch in filter(None, (e.teacher, e.student)):
            build_model(arch)  # a registered architecture
    assert len(set(bench.BENCH_KEYS)) == len(bench.BENCH_KEYS)


def test_cost_ranks_are_unique_and_give_the_running_order() -> None:
    ranks = sorted(e.cost_rank for e in bench.BENCH_ENTRIES)
    assert ranks == list(range(1, len(bench.BENCH_ENTRIES) + 1))  # unique, no gap
    assert bench.QUICK_ORDER == RUNNING_ORDER


def test_comparison_pairs_sit_beside_the_rows() -> None:
    for pair in bench_rows.COST_PAIRS:
        assert pair.more in bench.BENCH_KEYS and pair.less in bench.BENCH_KEYS and pair.more != pair.less, pair
        assert pair.question.split(":")[0] in ("interface", "data", "method"), pair
    assert leaderboard.COST_PAIRS is bench_rows.COST_PAIRS


# ------------------------------------------------------------------------------------- plan, execute, assemble
def test_plan_decides_what_runs_and_what_is_reused(bench_dir: Path) -> None:
    folder = _board_dir(bench_dir)
    tiny = {k: dict(TINY) for k in ENTRIES}
    plan = bench.plan_bench(DATA, "smoke", SEEDS, folder, entries=ENTRIES, overrides=tiny, log=None)
    assert plan.todo == [] and {k: [r.seed for r in v] for k, v in plan.reused.items()} == {k: SEEDS for k in ENTRIES}
    forced = bench.plan_bench(DATA, "smoke", SEEDS, folder, entries=ENTRIES, overrides=tiny, force=True, log=None)
    assert [(s, e.key) for s, e, _ in forced.todo] == [(0, "student"), (0, "kd"), (1, "student"), (1, "kd")]
    assert all(p == bench.record_path(folder, e.key, s) for s, e, p in forced.todo)  # seed-major
    other = bench.plan_bench(DATA, "smoke", SEEDS, folder, entries=["kd"], overrides={"kd": {"epochs": 2}}, log=None)
    assert len(other.todo) == 2 and other.options["kd"] == {"epochs": 2}  # other options: nothing reused
    with pytest.raises(bench.BenchError, match="at least one seed"):
        bench.plan_bench(DATA, "smoke", [], folder, log=None)


def test_execute_and_assemble_compose_to_run_bench(bench_dir: Path, tmp_path: Path) -> None:
    tiny = {k: dict(TINY) for k in ENTRIES}
    plan = bench.plan_bench(DATA, "smoke", SEEDS, _board_dir(bench_dir), entries=ENTRIES, overrides=tiny, log=None)
    runs = bench.execute_bench(plan, device="cpu", progress=False, log=None)  # everything reused: nothing runs
    assert {k: [r.seed for r in v] for k, v in runs.done.items()} == {k: SEEDS for k in ENTRIES}
    assert runs.teacher["arch"] and 0.5 < runs.teacher["test_acc"] <= 1.0
    board = bench.assemble_board(plan, runs, device="cpu", note="test")
    saved = leaderboard.Leaderboard.load(_board_dir(bench_dir) / leaderboard.LEADERBOARD_JSON)
    assert [e.to_dict() for e in board.entries] == [e.to_dict() for e in saved.entries]
    assert board.runs == saved.runs and board.teacher == saved.teacher
    # a spent time budget runs nothing, writes nothing, and the rows say so
    fresh = bench.plan_bench(DATA, "smoke", [0], tmp_path, entries=["kd"], overrides=tiny, log=None)
    skipped = bench.execute_bench(fresh, device="cpu", progress=False, time_budget_s=0.0, log=None)
    assert skipped.done == {"kd": []} and skipped.skipped == {"kd": [0]} and not list(tmp_path.iterdir())
    assert [e.status for e in bench.assemble_board(fresh, skipped, device="cpu").entries] == ["skipped"]
