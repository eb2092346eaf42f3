"""The paper table: measured paper-profile rows beside the reported figures, the gap, and what is missing."""
from __future__ import annotations

from pathlib import Path

from labkit import bench
from labkit.paper_table import NOT_MEASURED, PAPER_ROWS, paper_table, paper_table_markdown, write_paper_table
from labkit.results import ResultRecord


def _save(root: Path, key: str, method: str, seed: int, acc: float) -> None:
    rec = ResultRecord(method=method, access="score", dataset="fashion-mnist", teacher_arch="lenet5",
                       student_arch="lenet5-half", teacher_acc=0.9054, student_acc=acc, agreement=acc,
                       queries=55_000, transfer_set_size=55_000, wall_s=100.0 + seed, device="cpu", profile="paper",
                       seed=seed, extras={"bench": {"entry": key, "options": {}}})
    rec.save(bench.run_path(root, "paper", "fashion-mnist", key, seed))


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
    assert "| kd | 88.50 ± 0.71 | 0, 1 | 89.66" in md and "| -1.16 |" in md and "two seeds on a CPU" in md
    assert "## Not measured yet" in md and "**zsdb3kd-paper**" in md and "| student |" not in md
    out = write_paper_table("fashion-mnist", tmp_path)
    assert out == tmp_path / "paper" / "leaderboard.md" and out.read_text() == paper_table_markdown(
        "fashion-mnist", tmp_path)
