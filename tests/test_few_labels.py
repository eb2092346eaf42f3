"""Notebook 01's few-label study: both rows run on the requested subset sizes, records reload, gaps are clear."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from labkit.core.errors import LabkitError
from labkit.studies.few_labels import epochs_for, load_few_labels, run_few_labels
from labkit.studies.results_layout import stray_files
from labkit.teaching.plots import few_labels_plot


def test_epochs_scale_with_the_set_size() -> None:
    assert epochs_for(500, 12, "laptop") == 240
    assert epochs_for(120_000, 12, "laptop") == 12  # never fewer than the profile's
    assert epochs_for(100, 2, "smoke") == 5


def test_run_and_reload_few_labels(tmp_path) -> None:
    points = run_few_labels([100], [0], profile="smoke", out_dir=tmp_path, progress=False)
    assert {(p.row, p.size) for p in points} == {("student", 100), ("kd", 100)}
    by_row = {p.row: p for p in points}
    assert by_row["kd"].queries == 100 and by_row["student"].queries == 0  # KD asks once per labelled image
    assert all(p.epochs == 5 and len(p.accs) == 1 and 0 < p.mean <= 1 for p in points)
    folder = tmp_path / "few-labels" / "smoke" / "fashion-mnist" / "n100"  # <study>/<profile>/<dataset>/n<size>/
    assert sorted(p.relative_to(folder).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        "kd-seed0.json", "student-seed0.json"]
    assert stray_files(tmp_path) == []
    again = load_few_labels("smoke", out_dir=tmp_path, sizes=[100], seeds=[0])
    assert [p.accs for p in again] == [p.accs for p in points]
    plt.close("all")
    few_labels_plot(points, full={"student": (0.9, 0.01, 55_000)})
    assert plt.get_fignums() == []


def test_missing_records_name_the_command(tmp_path) -> None:
    with pytest.raises(LabkitError, match="python -m labkit few-labels"):
        load_few_labels("smoke", out_dir=tmp_path, sizes=[100], seeds=[0])


def test_committed_records_and_the_shipped_summary_agree() -> None:
    """Notebook 01 plots the committed laptop study; the wheel carries the same numbers in its summary file."""
    import json

    from labkit.studies.few_labels import SHIPPED_SUMMARY, reference_few_labels

    points = load_few_labels("laptop")
    assert all(len(p.accs) == 3 for p in points)
    doc = json.loads(SHIPPED_SUMMARY.read_text())
    assert sorted((p["row"], p["size"], tuple(p["accs"])) for p in doc["points"]) == \
        sorted((p.row, p.size, p.accs) for p in points)
    ref_points, full = reference_few_labels()
    assert set(full) == {"student", "kd"} and all(n > 50_000 for _, _, n in full.values())
    assert sorted(p.accs for p in ref_points) == sorted(p.accs for p in points)
