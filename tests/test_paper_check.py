"""make paper-check: its GPU plan is valid config for every paper row, and the whole check runs on the CPU at
tiny sizes (so the one GPU run does not fail on a typo), writing the records and the paper table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from labkit.core.errors import UnknownNameError
from labkit.core.results import ResultRecord
from labkit.methods.base import get_method
from labkit.studies import bench
from labkit.studies.bench import get_entries
from labkit.studies.paper_check import CHECK_PLAN, PaperCheckError, _keep_other_device_record, plan, run_paper_check
from labkit.studies.paper_table import PAPER_ROWS, paper_dir, paper_table
from labkit.studies.results_layout import stray_files

RUNNER_KEYS = {"train_limit", "paper_fraction", "budget"}


@pytest.mark.parametrize("scale", ["gpu", "tiny"])
def test_every_row_of_the_plan_is_valid_paper_config(scale: str) -> None:
    assert sorted(i.key for i in CHECK_PLAN) == sorted(PAPER_ROWS)
    for item in CHECK_PLAN:
        entry = get_entries([item.key])[0]
        opts = {**entry.option_dict(), **item.overrides(scale)}
        cfg_opts = {k: v for k, v in opts.items() if k not in RUNNER_KEYS}
        cls = get_method(entry.method)
        cfg = cls.config_class.for_profile("paper", "fashion-mnist", **cfg_opts)  # a typo in a field fails here
        for name, (full, run) in item.scaled.items():
            assert getattr(cls.config_class.for_profile("paper", "fashion-mnist", **entry.option_dict()), name) == full
            if scale == "gpu":
                assert getattr(cfg, name) == run
        if scale == "gpu":
            frac = opts.get("paper_fraction")
            assert (frac is None) == (item.fraction == 1.0)
            if frac is not None:
                assert frac["fraction"] == item.fraction and frac["why"] and set(frac["scaled"]) == set(item.scaled)


def test_the_gpu_scale_refuses_a_machine_without_cuda(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(PaperCheckError, match="--scale tiny"):
        run_paper_check(out_dir=tmp_path, log=None)
    with pytest.raises(UnknownNameError, match="huge"):
        run_paper_check(scale="huge", out_dir=tmp_path, log=None)
    with pytest.raises(UnknownNameError, match="paper rows only"):
        plan(["zsdb3kd+bank"])
    assert [i.key for i in plan(["kd", "student"])] == ["student", "kd"]


def test_a_record_from_another_device_is_kept_beside(tmp_path: Path) -> None:
    path = bench.record_path(paper_dir("fashion-mnist", tmp_path), "kd", 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"device": "cpu"}))
    _keep_other_device_record(path, torch.device("cpu"))  # same kind: left to be replaced
    assert path.exists()
    _keep_other_device_record(path, torch.device("cuda"))
    assert not path.exists() and (path.parent / "kd-seed0.cpu.json").exists()


@pytest.mark.slow
def test_tiny_paper_check_runs_every_row_and_writes_the_table(tmp_path: Path) -> None:
    check = run_paper_check(scale="tiny", out_dir=tmp_path, device="cpu", progress=False, log=None)
    folder = tmp_path / "paper-check" / "paper" / "fashion-mnist"
    assert check.results == folder and check.table == folder / "leaderboard.md" and check.table.exists()
    assert stray_files(tmp_path) == [] and {p.parent for p in tmp_path.rglob("*") if p.is_file()} == {folder}
    assert set(check.seconds) == set(PAPER_ROWS) and all(s is not None and s > 0 for s in check.seconds.values())
    for key in PAPER_ROWS:
        rec = ResultRecord.from_dict(json.loads((check.results / f"{key}-seed0.json").read_text()))
        assert rec.profile == "paper" and rec.paper_fraction["scale"] == "tiny"
        assert rec.box_precision in ("fp32", "")  # CPU: no autocast
    rows = paper_table("fashion-mnist", tmp_path)
    assert all(r.accuracy is not None and r.fraction == "tiny (plumbing check)" for r in rows)
    md = check.table.read_text()
    assert "plumbing check" in md and "Not measured yet" not in md
    # a budget already spent skips every row and says so
    skipped = run_paper_check(scale="tiny", out_dir=tmp_path / "b", device="cpu", budget_s=0, log=None)
    assert all(s is None for s in skipped.seconds.values()) and "0 of 10 rows" in skipped.table.read_text()


def test_a_row_whose_estimate_does_not_fit_the_budget_left_is_skipped(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The check plans its budget from the cost model: a row starts only if its estimate fits the time left."""
    class Hour:
        total_s = 3600.0

        @staticmethod
        def describe() -> str:
            return "about 1.0 h on this CPU"

    lines: list[str] = []
    monkeypatch.setattr(bench, "estimate_run", lambda *a, **k: Hour())
    check = run_paper_check(scale="tiny", out_dir=tmp_path, device="cpu", only=["kd"], budget_s=600, progress=False,
                            log=lines.append)
    assert check.seconds == {"kd": None} and not list(check.results.glob("kd-seed*.json"))
    assert any(line.startswith("[bench] kd: its estimate (about 1.0 h on this CPU) does not fit the ") for line in
               lines)
    assert any(line.startswith("[paper-check] kd: skipped, its estimate does not fit the ") for line in lines)
    assert "0 of 1 rows" in check.table.read_text()
