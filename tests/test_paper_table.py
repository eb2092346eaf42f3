"""The paper table: measured paper-profile rows beside the reported figures, the gap, and what is missing."""
from __future__ import annotations

from pathlib import Path

from labkit.core.results import ResultRecord
from labkit.studies import bench
from labkit.studies.paper_table import (
    NOT_MEASURED,
    PAPER_ROWS,
    paper_dir,
    paper_table,
    paper_table_markdown,
    write_paper_table,
)


def _save(root: Path, key: str, method: str, seed: int, acc: float) -> None:
    rec = ResultRecord(method=method, access="score", dataset="fashion-mnist", teacher_arch="lenet5",
                       student_arch="lenet5-half", teacher_acc=0.9054, student_acc=acc, agreement=acc,
                       queries=55_000, transfer_set_size=55_000, wall_s=100.0 + seed, device="cpu", profile="paper",
                       seed=seed, extras={"bench": {"entry": key, "options": {}}})
    rec.save(bench.record_path(paper_dir("fashion-mnist", root), key, seed))


def test_measured_rows_sit_beside_the_reported_figure(tmp_path: Path) -> None:
    _save(tmp_path, "kd", "kd", 0, 0.88)
    _save(tmp_path, "kd", "kd", 1, 0.89)
    rows = {r.key: r for r in paper_table("fashion-mnist", tmp_path)}
    assert list(rows) == list(PAPER_ROWS)
    kd = rows["kd"]
    assert kd.seeds == [0, 1] and abs(kd.accuracy.mean - 0.885) < 1e-9 and kd.reported == 0.8966
    assert abs(kd.gap - (0.885 - 0.8966)) < 1e-9 and kd.wall_s.mean == 100.5
    assert rows["zsdb3kd-paper"].accuracy is None and rows["zsdb3kd-paper"].why_not == NOT_MEASURED["zsdb3kd-paper"]
    md = paper_table_markdown("fashion-mnist", tmp_path, note="two seeds on a CPU")
    assert "| kd | full | 88.50 ± 0.71 | 0, 1 | 89.66" in md and "| -1.16 |" in md and "two seeds on a CPU" in md
    assert "## Not measured yet" in md and "**zsdb3kd-paper**" in md and "| student |" not in md
    out = write_paper_table("fashion-mnist", tmp_path)
    assert out == tmp_path / "paper-check" / "paper" / "fashion-mnist" / "leaderboard.md"
    assert out.read_text() == paper_table_markdown(
        "fashion-mnist", tmp_path)


def test_a_fraction_run_is_its_own_row_and_says_so(tmp_path: Path) -> None:
    from labkit.studies.paper_check import CHECK_PLAN

    item = next(i for i in CHECK_PLAN if i.key == "zsdb3kd-paper")
    _save(tmp_path, "zsdb3kd-paper", "zsdb3kd", 0, 0.5)
    rec = ResultRecord(method="zsdb3kd", access="decision", dataset="fashion-mnist", teacher_arch="lenet5",
                       student_arch="lenet5-half", teacher_acc=0.9054, student_acc=0.6, agreement=0.6, queries=10,
                       transfer_set_size=3000, wall_s=200.0, device="cuda:0", profile="paper", seed=1,
                       paper_fraction=item.overrides("gpu")["paper_fraction"],
                       extras={"bench": {"entry": "zsdb3kd-paper", "options": {}}})
    rec.save(bench.record_path(paper_dir("fashion-mnist", tmp_path), "zsdb3kd-paper", 1))
    rows = [r for r in paper_table("fashion-mnist", tmp_path) if r.key == "zsdb3kd-paper"]
    assert [r.fraction for r in rows] == ["full", "10% (per_class 3000 → 300)"]  # cpu first, then cuda
    assert [r.seeds for r in rows] == [[0], [1]] and rows[1].machine.endswith("cuda:0")
    assert "compares unlike sizes" in paper_table_markdown("fashion-mnist", tmp_path)


def test_the_committed_cpu_paper_runs_are_in_the_repository() -> None:
    """results/paper-check/ is tracked (the paper runs were once git-ignored): the measured rows must be there in a
    clean clone."""
    root = Path(__file__).resolve().parents[1] / "results"
    rows = {r.key: r for r in paper_table("fashion-mnist", root) if r.accuracy is not None}
    assert {"student", "kd", "fsbbt"} <= set(rows)
    assert all(rows[k].seeds == [0, 1, 2] and rows[k].fraction == "full" for k in ("student", "kd", "fsbbt"))
    table = paper_dir("fashion-mnist", root) / "leaderboard.md"
    assert table.read_text().startswith("# Paper profile: fashion-mnist")
