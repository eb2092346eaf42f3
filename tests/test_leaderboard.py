"""The leaderboard table, built from hand-made records: statistics, schema, Markdown, figures and analysis.

Nothing here trains a model; ``tests/test_bench.py`` runs a real (tiny) bench.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import plotly.graph_objects as go
import pytest

from labkit.core.paths import REPO_ROOT
from labkit.core.results import ResultRecord
from labkit.studies import leaderboard as lb
from labkit.studies.bench import BenchEntry, get_entries
from labkit.studies.paper_figures import REPORTED, newer_work, primary_figure
from labkit.studies.results_layout import BENCH, study_dir

DATA = "toy2d-blobs-3"
#: the committed laptop board
COMMITTED = REPO_ROOT / "results" / "bench" / "laptop" / "fashion-mnist" / lb.LEADERBOARD_JSON


def _record(method: str, access: str, seed: int, acc: float, queries: int, rows: int,
            ingredients: dict[str, dict[str, int]] | None = None) -> ResultRecord:
    return ResultRecord(method=method, access=access, dataset=DATA, teacher_arch="mlp", student_arch="mlp-small",
                        teacher_acc=0.9, student_acc=acc, agreement=acc + 0.01, queries=queries,
                        transfer_set_size=rows, wall_s=1.0 + seed, device="cpu", profile="smoke", seed=seed,
                        ingredients=ingredients or {}, extras={"bench": {"elapsed_s": 2.0 + seed}})


def _board(records: dict[str, list[ResultRecord]], entries: list[BenchEntry] | None = None) -> lb.Leaderboard:
    entries = entries or get_entries(list(records))
    rows = [lb.summarize_entry(e, records[e.key], DATA) for e in entries]
    runs = [r.to_dict() for e in entries for r in records[e.key]]
    return lb.Leaderboard(dataset=DATA, profile="smoke", seeds=[0, 1], entries=rows, runs=runs,
                          teacher={"arch": "mlp", "test_acc": 0.9}, student_arch="mlp-small",
                          environment=lb.environment_info("cpu", "test"), created_utc="2025-01-01T00:00:00+00:00",
                          bench_wall_s=1.0, total_run_s=sum(lb.run_elapsed_s(r) for r in runs))


@pytest.fixture()
def board() -> lb.Leaderboard:
    """student (no queries), kd (one query per row) and db3kd-bd (two ingredients, a selection holdout)."""
    db3kd_ings = [{"distance-soft-labels": {"rows": 90, "holdout_rows": 10, "queries": 9000},
                   "true-label-rows": {"rows": 20, "holdout_rows": 0, "queries": 0}},
                  {"distance-soft-labels": {"rows": 90, "holdout_rows": 10, "queries": 11000},
                   "true-label-rows": {"rows": 20, "holdout_rows": 0, "queries": 0}}]
    records = {
        "student": [_record("student", "none", s, 0.70 + 0.02 * s, 0, 400,
                            {"labelled-data": {"rows": 400, "holdout_rows": 0, "queries": 0}}) for s in (0, 1)],
        "kd": [_record("kd", "score", s, 0.80 + 0.02 * s, 400, 400,
                       {"labelled-data": {"rows": 400, "holdout_rows": 0, "queries": 400}}) for s in (0, 1)],
        "db3kd-paper": [_record("db3kd", "decision", s, 0.70, 1000, 100,
                                {"distance-soft-labels": {"rows": 100, "holdout_rows": 0, "queries": 1000}})
                        for s in (0, 1)],
        "db3kd-bd+true-labels": [_record("db3kd", "decision", s, 0.75, q["distance-soft-labels"]["queries"], 110, q)
                                 for s, q in enumerate(db3kd_ings)],
    }
    return _board(records)


def test_rows_aggregate_seeds_and_ingredients(board: lb.Leaderboard) -> None:
    kd = board.entry("kd")
    assert kd.status == "ok" and kd.seeds == [0, 1] and kd.measured
    assert kd.student_acc.mean == pytest.approx(0.81) and kd.student_acc.std == pytest.approx(0.02 / math.sqrt(2))
    assert kd.elapsed_s.values == [2.0, 3.0] and kd.wall_s.values == [1.0, 2.0]
    db = board.entry("db3kd-bd+true-labels")
    assert list(db.ingredients) == ["distance-soft-labels", "true-label-rows"]
    assert db.ingredients["distance-soft-labels"] == {"rows": 90, "holdout_rows": 10, "queries": 10000}
    assert db.ingredients_note() == ("distance-soft-labels (90 rows + 10 holdout, 10,000 queries); "
                                     "true-label-rows (20 rows, 0 queries)")
    assert lb.Stat.of([3.0]).std is None  # one seed: no spread


def test_markdown_shows_the_table_ingredients_and_the_transfer_set_definition(board: lb.Leaderboard) -> None:
    md = board.to_markdown()
    assert "| student |" in md and "| kd |" in md and "| db3kd-bd+true-labels |" in md and "**reported**" in md
    assert "distinct training rows" in md and "holdout excluded" in md and "same definition for every method" in md
    notes = {line.split("**")[1]: line for line in md.splitlines() if line.startswith("- **")}
    assert "Ingredients: labelled-data (400 rows, 400 queries)" in notes["kd"]
    assert "true-label-rows (20 rows, 0 queries)" in notes["db3kd-bd+true-labels"]
    assert "| 81.00 ± 1.41 |" in md  # kd's accuracy, mean ± std in percent


def test_rows_on_another_teacher_get_their_own_table_and_stay_out_of_the_comparisons(
        board: lb.Leaderboard, tmp_path: Path) -> None:
    other = [ResultRecord.from_dict({**_record("zsdb3kd", "decision", s, 0.3, 500, 50).to_dict(),
                                     "teacher_arch": "mlp-wide", "teacher_acc": 0.95, "student_arch": "mlp-wide-half"})
             for s in (0, 1)]
    board.entries.append(lb.summarize_entry(get_entries(["zsdb3kd-paper-db3-teacher"])[0], other, DATA))
    board.runs += [r.to_dict() for r in other]
    assert [e.key for e in board.measured()] == ["student", "kd", "db3kd-paper", "db3kd-bd+true-labels"]
    assert len(board.measured(every_teacher=True)) == 5
    assert list(board.other_teachers()) == ["mlp-wide"]
    md = board.to_markdown()
    main, _, rest = md.partition("### On another teacher: **mlp-wide** (95.00% test accuracy, measured by the lab)")
    assert rest and "| zsdb3kd-paper-db3-teacher |" not in main and "| zsdb3kd-paper-db3-teacher |" in rest
    assert "Student **mlp-wide-half**" in rest and "| db3kd-paper |" in main
    assert "Teacher mlp-wide → student mlp-wide-half." in rest  # its ladder line names the pair too
    assert "zsdb3kd-paper-db3-teacher" not in lb.accuracy_per_decade(board)
    again = lb.Leaderboard.load(board.save(tmp_path)[0])
    assert again.entry("zsdb3kd-paper-db3-teacher").teacher_arch == "mlp-wide" and len(again.measured()) == 4


def test_round_trip_and_schema(board: lb.Leaderboard, tmp_path: Path) -> None:
    jpath, mpath = board.save(study_dir(BENCH, "smoke", DATA, tmp_path))
    doc = json.loads(jpath.read_text())
    assert lb.validate_leaderboard(doc) == []
    again = lb.Leaderboard.load(jpath)
    key = "db3kd-bd+true-labels"
    assert again.to_dict() == doc and again.entry(key).ingredients == board.entry(key).ingredients
    assert mpath.read_text().strip() == board.to_markdown()
    assert [r.method for r in again.records()].count("kd") == 2
    assert lb.saved_leaderboard(DATA, "smoke", tmp_path) is not None
    assert lb.saved_leaderboard(DATA, "laptop", tmp_path) is None
    assert lb.saved_leaderboard("fashion-mnist", "smoke", tmp_path) is None


def test_validation_catches_broken_files(board: lb.Leaderboard) -> None:
    good = board.to_dict()
    assert lb.validate_leaderboard(good) == []
    broken = copy.deepcopy(good)
    del broken["environment"]
    assert any("environment" in p for p in lb.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][0]["student_acc"]["values"][0] = 42.0  # a percentage where a fraction belongs
    assert any("fractions" in p for p in lb.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][1]["reported"] = {"student_acc": 0.9, "label": "measured"}
    assert any("reported" in p for p in lb.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][1]["status"] = "missing"
    assert any("status" in p for p in lb.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["entries"][1]["queries"]["n"] = 7
    assert any("n != len(values)" in p for p in lb.validate_leaderboard(broken))
    broken = copy.deepcopy(good)
    broken["runs"][0]["profile"] = "laptop"
    assert any("not toy2d" in p for p in lb.validate_leaderboard(broken))
    assert lb.validate_leaderboard([]) == ["the document is not a JSON object"]
    with pytest.raises(lb.BenchError, match="python -m labkit bench"):
        lb.Leaderboard.from_dict({"schema": "something else"})


def test_committed_leaderboard_names_every_rows_ingredients() -> None:
    board = lb.Leaderboard.load(COMMITTED)
    assert board.measured() and all(e.ingredients for e in board.entries)
    assert "Ingredients: not recorded" not in board.to_markdown()


def test_old_runs_without_ingredients_render() -> None:
    """Leaderboards saved before records named their ingredients must still load and render."""
    doc = json.loads(COMMITTED.read_text())
    for entry in doc["entries"]:
        entry.pop("ingredients", None)
    for run in doc.get("runs", []):
        run.pop("ingredients", None)
    old = lb.Leaderboard.from_dict(doc)
    assert old.measured() and all(not e.ingredients for e in old.entries)
    md = old.to_markdown()
    assert md.count("Ingredients: not recorded") == len(old.entries)
    skipped = lb.summarize_entry(get_entries(["kd"])[0], [], DATA)
    assert skipped.status == "skipped" and skipped.ingredients_note() == "—"


def test_reported_figures_are_labelled() -> None:
    assert all(f.label == "reported" for f in REPORTED)
    assert all(0.0 < f.student_acc <= 1.0 for f in REPORTED if f.student_acc is not None)
    zskd = primary_figure("zskd-paper", "fashion-mnist")
    assert zskd is not None and zskd.verified and "reported" in zskd.short() and "cannot be checked" in zskd.note
    mbd = primary_figure("db3kd-paper", "mnist")
    assert mbd is not None and not mbd.verified and "unverified" in mbd.short()
    assert primary_figure("mekd-soft-paper", "fashion-mnist") is None
    assert primary_figure("zsdb3kd+bank", "fashion-mnist") is None  # a figure credited to a paper: paper rows only
    later = {f.entry: f for f in newer_work("fashion-mnist")}
    assert set(later) == {"zsdb3kd", "ideal", "dfhl-rs", "dip-kd", "divbfkd"}
    assert all(f.label == "reported" and f.paper for f in later.values())
    assert later["dip-kd"].student_acc == pytest.approx(0.8398) and later["dip-kd"].queries_approx == 50_000
    assert not later["zsdb3kd"].verified and "secondary" in later["zsdb3kd"].note
    # a leaderboard row on Fashion-MNIST carries the reported figure beside the measurement, labelled
    row = lb.summarize_entry(get_entries(["fsbbt"])[0], [], "fashion-mnist")
    assert row.reported["label"] == "reported"
    assert row.reported["student_acc"] == primary_figure("fsbbt", "fashion-mnist").student_acc
    assert row.status == "skipped" and not row.measured


def test_pareto_front_and_exercise_check() -> None:
    from labkit.teaching.exercises.leaderboard import check_pareto_front

    assert lb.pareto_front([10, 100, 1000], [0.8, 0.7, 0.9]) == [0, 2]
    assert lb.pareto_front([50, 50, 10], [0.7, 0.7, 0.4]) == [2, 0, 1]  # identical points both stay
    assert lb.pareto_front([100, 400], [0.8, 0.8]) == [0]  # same accuracy for more queries loses
    with pytest.raises(ValueError):
        lb.pareto_front([1, 2], [0.5])

    def keeps_ties_out(queries, accuracy):  # a typical mistake: strict dominance on both axes
        n = len(queries)
        return [i for i in range(n) if not any(queries[j] < queries[i] and accuracy[j] > accuracy[i]
                                               for j in range(n))]

    assert check_pareto_front(lb.pareto_front).passed
    fresh = check_pareto_front(lambda q, a: None)
    assert not fresh.passed and not fresh.attempted
    wrong = check_pareto_front(keeps_ties_out)
    assert not wrong.passed and wrong.attempted and wrong.messages


def test_ladder_steps_compare_rows_on_the_same_teacher() -> None:
    """A family with rows on two teachers (IDEAL on LeNet-5 and on the public code's CNN) sets each row against the
    paper row on its own teacher; a paper row alone on its teacher is its own base and gets no step."""
    def on(teacher: str, method: str, seed: int, acc: float, queries: int) -> ResultRecord:
        return ResultRecord.from_dict({**_record(method, "decision", seed, acc, queries, 100).to_dict(),
                                       "teacher_arch": teacher})

    records = {"ideal": [on("mlp", "ideal", s, 0.60, 20_000) for s in (0, 1)],
               "noise-kd-cnn": [on("cnn", "noise-kd", s, 0.77, 200_000) for s in (0, 1)],
               "ideal-cnn": [on("cnn", "ideal", s, 0.75, 20_000) for s in (0, 1)],
               "ideal-public-code": [on("cnn", "ideal", s, 0.69, 95_000) for s in (0, 1)]}
    steps = {s.row: s for s in lb.ladder_steps(_board(records))}
    assert {row: s.paper for row, s in steps.items()} == {"noise-kd-cnn": "ideal-cnn", "ideal-public-code": "ideal-cnn"}
    assert steps["noise-kd-cnn"].acc_gap == pytest.approx(0.02) and steps["noise-kd-cnn"].query_ratio == 10.0
    del records["ideal-cnn"], records["ideal-public-code"]  # control: no paper row on its teacher, the family's first
    assert [(s.paper, s.row) for s in lb.ladder_steps(_board(records))] == [("ideal", "noise-kd-cnn")]


def test_cost_comparisons_ladder_steps_and_accuracy_per_decade(board: lb.Leaderboard) -> None:
    pairs = {(c.better, c.worse): c for c in lb.cost_comparisons(board)}
    assert set(pairs) == {("kd", "student")}  # DB3KD vs KD is no pair: their data and recipes differ
    assert pairs["kd", "student"].query_ratio is None and "accuracy points" in pairs["kd", "student"].sentence()
    steps = lb.ladder_steps(board)
    assert [(s.paper, s.row) for s in steps] == [("db3kd-paper", "db3kd-bd+true-labels")]
    step = steps[0]
    assert step.acc_gap == pytest.approx(0.05) and step.query_ratio == pytest.approx(10.0)
    assert step.points_per_decade == pytest.approx(5.0)  # 5 points for one factor of ten
    assert "per factor of ten" in step.sentence()
    ladders = board.ladders()
    assert [e.key for e in ladders["db3kd"]] == ["db3kd-paper", "db3kd-bd+true-labels"]
    got = lb.accuracy_per_decade(board)
    assert set(got) == {"kd", "db3kd-paper", "db3kd-bd+true-labels"}  # the student alone sends no queries
    assert got["kd"] == pytest.approx((0.81 - 0.71) / math.log10(400))


def test_markdown_shows_one_ladder_per_method(board: lb.Leaderboard) -> None:
    md = board.to_markdown()
    assert "## The ladders" in md and "### DB3KD" in md
    section = md.split("### DB3KD")[1]
    assert section.index("**db3kd-paper** (paper") < section.index("**db3kd-bd+true-labels** (combined")
    assert "| db3kd-paper | paper |" in md


def test_figures_show_every_measured_method(board: lb.Leaderboard) -> None:
    from labkit.teaching.plots.leaderboard import accuracy_by_access, accuracy_vs_queries

    fig = accuracy_vs_queries(board)
    assert isinstance(fig, go.Figure) and fig.layout.xaxis.type == "log"
    names = {t.name for t in fig.data}
    assert {"kd", "db3kd-bd+true-labels", "Pareto front"} <= names  # querying methods are points; the front joins them
    assert "student: 0 queries" in names  # 0 queries: a reference line, named in the legend (no colliding text)
    bars = accuracy_by_access(board)
    bar_keys = [k for t in bars.data if isinstance(t, go.Bar) for k in t.x[1]]
    assert sorted(bar_keys) == ["db3kd-bd+true-labels", "db3kd-paper", "kd", "student"]


def test_plots_and_exercise_do_not_import_the_runner() -> None:
    import ast

    for rel in ("labkit/teaching/plots/leaderboard.py", "labkit/teaching/exercises/leaderboard.py",
                "labkit/studies/leaderboard.py", "labkit/studies/board.py", "labkit/studies/board_stats.py",
                "labkit/studies/board_schema.py", "labkit/studies/board_analysis.py", "labkit/studies/environment.py",
                "labkit/studies/bench_rows.py"):
        tree = ast.parse((REPO_ROOT / rel).read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not modules & {"bench", "runner", "labkit.studies.bench", "labkit.studies.runner"}, rel


def test_the_facade_keeps_every_public_name() -> None:
    """Notebooks import from labkit.studies.leaderboard; each name there is the one its own module defines."""
    from labkit.core import errors
    from labkit.studies import board, board_analysis, board_stats

    assert lb.BenchError is errors.BenchError and lb.Leaderboard is board.Leaderboard
    assert lb.summarize_entry is board_stats.summarize_entry and lb.ladder_steps is board_analysis.ladder_steps
    for name in lb.__all__:
        assert getattr(lb, name) is not None, name
