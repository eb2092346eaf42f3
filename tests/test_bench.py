"""The leaderboard bench: a tiny real bench run, the schema of its files, resume, missing methods, figures."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import plotly.graph_objects as go
import pytest

from labkit import bench
from labkit.errors import UnknownNameError
from labkit.paper_figures import REPORTED, primary_figure

TINY = {"train_limit": 400, "epochs": 1}  # real runs, tiny sizes: the schema is what is tested here
ENTRIES = ["student", "kd"]
SEEDS = [0, 1]
DATA = "toy2d-blobs-3"  # its teacher is committed in data/teachers, so it loads at once


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-entry × 2-seed smoke bench on a toy data set, written to a temporary folder."""
    out = tmp_path_factory.mktemp("bench")
    bench.run_bench(DATA, "smoke", SEEDS, entries=ENTRIES, out_dir=out, device="cpu", progress=False,
                    overrides={k: dict(TINY) for k in ENTRIES}, note="test", log=None)
    return out


def test_result_files_follow_the_schema(bench_dir: Path) -> None:
    doc = json.loads((bench_dir / bench.LEADERBOARD_JSON).read_text())
    assert bench.validate_leaderboard(doc) == []
    assert doc["dataset"] == DATA and doc["profile"] == "smoke" and doc["seeds"] == SEEDS
    assert [e["key"] for e in doc["entries"]] == ENTRIES
    assert len(doc["runs"]) == len(ENTRIES) * len(SEEDS)
    env = doc["environment"]
    assert env["device"] == "cpu" and env["versions"]["torch"] and env["machine"] and env["note"] == "test"
    assert 0.5 < doc["teacher"]["test_acc"] <= 1.0
    by_key = {e["key"]: e for e in doc["entries"]}
    for key, e in by_key.items():
        assert e["status"] == "ok" and sorted(e["seeds"]) == SEEDS
        for stat in ("student_acc", "agreement", "queries", "transfer_set_size", "wall_s"):
            assert e[stat]["n"] == 2 and e[stat]["std"] is not None
            assert min(e[stat]["values"]) <= e[stat]["mean"] <= max(e[stat]["values"])
        assert e["transfer_set_size"]["mean"] == TINY["train_limit"]
        assert e["reported"] is None and e["reported_note"]  # the papers have no toy figures
    assert by_key["student"]["access"] == "none" and by_key["student"]["queries"]["values"] == [0, 0]
    # plain KD asks the teacher exactly once per transfer-set image
    assert by_key["kd"]["access"] == "score" and by_key["kd"]["queries"]["values"] == [TINY["train_limit"]] * 2
    # the Markdown table has every entry, the reported column, and where it ran
    md = (bench_dir / bench.LEADERBOARD_MD).read_text()
    assert "| student |" in md and "| kd |" in md and "**reported**" in md and "torch" in md
    # each run was saved as it finished, in the per-run layout
    for key in ENTRIES:
        for seed in SEEDS:
            rec = json.loads(bench.run_path(bench_dir, "smoke", DATA, key, seed).read_text())
            assert rec["seed"] == seed and rec["extras"]["bench"]["entry"] == key


def test_leaderboard_round_trips(bench_dir: Path) -> None:
    board = bench.Leaderboard.load(bench_dir / bench.LEADERBOARD_JSON)
    assert board.to_dict() == json.loads((bench_dir / bench.LEADERBOARD_JSON).read_text())
    assert [r.method for r in board.records()].count("kd") == 2
    assert bench.saved_leaderboard(DATA, "smoke", bench_dir) is not None
    assert bench.saved_leaderboard(DATA, "laptop", bench_dir) is None
    assert bench.saved_leaderboard("fashion-mnist", "smoke", bench_dir) is None


def test_validation_catches_broken_files(bench_dir: Path) -> None:
    good = json.loads((bench_dir / bench.LEADERBOARD_JSON).read_text())
    broken = copy.deepcopy(good)
    del broken["environment"]
    assert any("environment" in p for p in bench.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][0]["student_acc"]["values"][0] = 42.0  # a percentage where a fraction belongs
    assert any("fractions" in p for p in bench.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][1]["reported"] = {"student_acc": 0.9, "label": "measured"}
    assert any("reported" in p for p in bench.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["runs"][0]["profile"] = "laptop"
    assert bench.validate_leaderboard(broken)
    with pytest.raises(bench.BenchError, match="python -m labkit bench"):
        bench.Leaderboard.from_dict({"schema": "something else"})


def test_resume_reuses_saved_runs_and_options_must_match(bench_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (bench_dir / "smoke").rglob("*.json")}
    lines: list[str] = []
    bench.run_bench(DATA, "smoke", SEEDS, entries=ENTRIES, out_dir=bench_dir, device="cpu",
                    progress=False, overrides={k: dict(TINY) for k in ENTRIES}, log=lines.append, save=False)
    assert sum("reusing" in line for line in lines) == 4
    assert before == {p: p.stat().st_mtime_ns for p in (bench_dir / "smoke").rglob("*.json")}
    path = bench.run_path(bench_dir, "smoke", DATA, "kd", 0)
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, dict(TINY)) is not None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 0, {**TINY, "epochs": 2}) is None
    assert bench.load_saved_run(path, "kd", "laptop", DATA, 0, dict(TINY)) is None
    assert bench.load_saved_run(path, "kd", "smoke", DATA, 1, dict(TINY)) is None
    assert bench.load_saved_run(path, "student", "smoke", DATA, 0, dict(TINY)) is None


def test_cli_bench_reuses_runs_and_writes_files(bench_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.cli import main

    sets = [f"{k}.{o}={v}" for k in ENTRIES for o, v in TINY.items()]
    argv = ["bench", "--dataset", DATA, "--profile", "smoke", "--seeds", *map(str, SEEDS), "--only", *ENTRIES, "--out-dir",
            str(bench_dir), "--no-progress", "--device", "cpu"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "| kd |" in out
    assert bench.validate_leaderboard(json.loads((bench_dir / bench.LEADERBOARD_JSON).read_text())) == []


def test_missing_method_fails_clearly_or_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.methods import base

    monkeypatch.setitem(base.METHOD_MODULES, "ghost", "ghost_not_written_yet")
    ghost = bench.BenchEntry("ghost", "ghost", "A method nobody wrote yet", "decision", "none")
    with pytest.raises(bench.BenchError, match="--allow-missing"):
        bench.run_bench(DATA, "smoke", [0], entries=[ghost], out_dir=tmp_path, progress=False, log=None)
    assert not (tmp_path / bench.LEADERBOARD_JSON).exists()
    board = bench.run_bench(DATA, "smoke", [0], entries=[ghost], out_dir=tmp_path, progress=False,
                            allow_missing=True, log=None)
    assert board.entry("ghost").status == "missing" and not board.entry("ghost").measured
    doc = json.loads((tmp_path / bench.LEADERBOARD_JSON).read_text())
    assert bench.validate_leaderboard(doc) == []
    assert "ghost (missing)" in (tmp_path / bench.LEADERBOARD_MD).read_text()


def test_entries_and_overrides() -> None:
    assert bench.BENCH_KEYS == ("student", "kd", "db3kd-bd", "db3kd-mbd", "zskd", "zsdb3kd", "fsbbt", "mekd-soft",
                                "mekd-hard", "kd-edge")
    assert bench.get_entries(["mekd_hard"])[0].option_dict() == {"response": "hard"}
    with pytest.raises(UnknownNameError, match="bench entry"):
        bench.get_entries(["dfme"])
    got = bench.parse_overrides(["db3kd-bd.queries=500", "kd.tau=2.5", "mekd-soft.response=soft"])
    assert got == {"db3kd-bd": {"queries": 500}, "kd": {"tau": 2.5}, "mekd-soft": {"response": "soft"}}
    with pytest.raises(bench.BenchError, match="ENTRY.OPTION=VALUE"):
        bench.parse_overrides(["queries500"])
    with pytest.raises(UnknownNameError):
        bench.parse_overrides(["nope.queries=5"])


def test_pareto_front_and_exercise_check() -> None:
    from labkit.exercises.leaderboard import check_pareto_front

    assert bench.pareto_front([10, 100, 1000], [0.8, 0.7, 0.9]) == [0, 2]
    assert bench.pareto_front([50, 50, 10], [0.7, 0.7, 0.4]) == [2, 0, 1]  # identical points both stay
    assert bench.pareto_front([100, 400], [0.8, 0.8]) == [0]  # same accuracy for more queries loses

    def reference(queries, accuracy):
        return bench.pareto_front(queries, accuracy)

    def keeps_ties_out(queries, accuracy):  # a typical mistake: strict dominance on both axes
        n = len(queries)
        return [i for i in range(n) if not any(queries[j] < queries[i] and accuracy[j] > accuracy[i]
                                               for j in range(n))]

    assert check_pareto_front(reference).passed
    fresh = check_pareto_front(lambda q, a: None)
    assert not fresh.passed and not fresh.attempted
    wrong = check_pareto_front(keeps_ties_out)
    assert not wrong.passed and wrong.attempted and wrong.messages


def test_reported_figures_are_labelled() -> None:
    assert all(f.label == "reported" for f in REPORTED)
    assert all(0.0 < f.student_acc <= 1.0 for f in REPORTED if f.student_acc is not None)
    zskd = primary_figure("zskd", "fashion-mnist")
    assert zskd is not None and zskd.verified and "reported" in zskd.short()
    mbd = primary_figure("db3kd-mbd", "mnist")
    assert mbd is not None and not mbd.verified and "unverified" in mbd.short()
    assert primary_figure("mekd-soft", "fashion-mnist") is None
    # a leaderboard row on Fashion-MNIST carries the reported figure beside the measurement, labelled
    row = bench.summarize_entry(bench.get_entries(["fsbbt"])[0], [], "fashion-mnist")
    assert row.reported["label"] == "reported" and row.reported["student_acc"] == primary_figure(
        "fsbbt", "fashion-mnist").student_acc
    assert row.status == "skipped" and not row.measured


def test_figures_show_every_measured_method(bench_dir: Path) -> None:
    from labkit.plots.leaderboard import accuracy_by_access, accuracy_vs_queries

    board = bench.Leaderboard.load(bench_dir / bench.LEADERBOARD_JSON)
    fig = accuracy_vs_queries(board)
    assert isinstance(fig, go.Figure) and fig.layout.xaxis.type == "log"
    names = {t.name for t in fig.data}
    assert "kd" in names  # the querying method is a point; the student (0 queries) is a reference line
    assert any("student" in (a.text or "") for a in fig.layout.annotations)
    bars = accuracy_by_access(board)
    bar_keys = [k for t in bars.data if isinstance(t, go.Bar) for k in t.x[1]]
    assert sorted(bar_keys) == sorted(ENTRIES)
    comparisons = bench.cost_comparisons(board)
    assert [(c.better, c.worse) for c in comparisons] == [("kd", "student")]
    assert "accuracy points" in comparisons[0].sentence()


def test_accuracy_per_decade(bench_dir: Path) -> None:
    import math

    board = bench.Leaderboard.load(bench_dir / bench.LEADERBOARD_JSON)
    got = bench.accuracy_per_decade(board)
    kd, student = board.entry("kd"), board.entry("student")
    assert set(got) == {"kd"}  # the student alone sends no queries
    assert got["kd"] == pytest.approx((kd.student_acc.mean - student.student_acc.mean) / math.log10(kd.queries.mean))


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
