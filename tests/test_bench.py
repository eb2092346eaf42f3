"""The bench: a tiny real bench run, its files, resume, the CLI, overrides, time budget and worker processes.

The table itself (statistics, schema, Markdown, figures, analysis) is tested on hand-made records in
``tests/test_leaderboard.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.core.errors import UnknownNameError
from labkit.studies import bench, leaderboard

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


def test_result_files_follow_the_schema(bench_dir: Path) -> None:
    doc = json.loads((bench_dir / leaderboard.LEADERBOARD_JSON).read_text())
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
    md = (bench_dir / leaderboard.LEADERBOARD_MD).read_text()
    assert "| student |" in md and "| kd |" in md and "**reported**" in md and "torch" in md
    assert "Ingredients: labelled-data (400 rows, 400 queries)" in md
    # each run was saved as it finished, in the per-run layout
    for key in ENTRIES:
        for seed in SEEDS:
            rec = json.loads(bench.run_path(bench_dir, "smoke", DATA, key, seed).read_text())
            assert rec["seed"] == seed and rec["extras"]["bench"]["entry"] == key


def test_resume_reuses_saved_runs_and_options_must_match(bench_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (bench_dir / "smoke").rglob("*.json")}
    lines: list[str] = []
    board = bench.run_bench(DATA, "smoke", SEEDS, entries=ENTRIES, out_dir=bench_dir, device="cpu",
                            progress=False, overrides={k: dict(TINY) for k in ENTRIES}, log=lines.append, save=False)
    assert sum("reusing" in line for line in lines) == 4
    assert before == {p: p.stat().st_mtime_ns for p in (bench_dir / "smoke").rglob("*.json")}
    assert board.entry("kd").ingredients  # resumed records keep their ingredients
    path = bench.run_path(bench_dir, "smoke", DATA, "kd", 0)
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY)) is not None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, {**TINY, "epochs": 2}) is None
    assert bench.load_saved_run(path, "kd", "laptop", DATA, 0, dict(TINY)) is None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 1, dict(TINY)) is None
    assert bench.load_saved_run(path, "student", "smoke", DATA, 0, dict(TINY)) is None


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
    assert leaderboard.validate_leaderboard(json.loads((bench_dir / leaderboard.LEADERBOARD_JSON).read_text())) == []


def test_time_budget_skips_the_rest(tmp_path: Path) -> None:
    board = bench.run_bench(DATA, "smoke", [0], entries=ENTRIES, out_dir=tmp_path, device="cpu", progress=False,
                            overrides={k: dict(TINY) for k in ENTRIES}, time_budget_s=0.0, log=None)
    assert [e.status for e in board.entries] == ["skipped", "skipped"] and not board.runs
    assert leaderboard.validate_leaderboard(board.to_dict()) == []
    assert "| kd (skipped) |" in board.to_markdown()


def test_a_failing_run_names_its_entry(tmp_path: Path) -> None:
    with pytest.raises(bench.BenchError, match=r"kd \(seed 0\) failed"):
        bench.run_bench(DATA, "smoke", [0], entries=["kd"], out_dir=tmp_path, device="cpu", progress=False,
                        overrides={"kd": {"epochs": 0}}, log=None)
    assert not (tmp_path / leaderboard.LEADERBOARD_JSON).exists()


def test_entries_and_overrides() -> None:
    paper_rows = {"kd", "db3kd-paper", "zskd-paper", "zsdb3kd-paper", "fsbbt", "mekd-soft-paper", "mekd-hard-paper"}
    baselines = {"noise-kd", "kd-edge-hard", "zskd-copies", "db3kd-soft-only"}  # zskd-copies is ZSKD's combined row
    combined = {"zsdb3kd+bank", "db3kd-bd+true-labels", "db3kd-mbd+true-labels", "mekd-soft+edge",
                "mekd-hard+edge"}
    assert paper_rows | baselines | combined <= set(bench.BENCH_KEYS)
    assert sorted(bench.QUICK_ORDER) == sorted(bench.BENCH_KEYS)
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


def test_a_bench_of_another_profile_leaves_the_saved_board_alone(tmp_path: Path) -> None:
    """results/ holds the laptop board; a paper-profile bench must not overwrite it."""
    (tmp_path / leaderboard.LEADERBOARD_JSON).write_text(json.dumps({"profile": "laptop", "dataset": DATA}))
    assert bench.board_dir(tmp_path, "smoke", DATA) == tmp_path / "smoke" / DATA
    assert bench.board_dir(tmp_path, "laptop", DATA) == tmp_path
    assert bench.board_dir(tmp_path / "empty", "smoke", DATA) == tmp_path / "empty"
