"""The bf16-against-fp32 study: its comparison rule, its table, and one end-to-end run on the smoke profile."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.core.errors import BenchError
from labkit.core.results import ResultRecord
from labkit.studies.bench import run_bench
from labkit.studies.precision import compare_precision, precision_markdown, run_precision_study


def rec(seed: int, val: float, wall: float, method_s: float | None = None, test: float = 0.5) -> ResultRecord:
    return ResultRecord(method="kd", access="score", dataset="fashion-mnist", teacher_arch="lenet5",
                        student_arch="lenet5-half", teacher_acc=0.9, student_acc=test, agreement=test, queries=10,
                        transfer_set_size=10, wall_s=wall, device="cpu", profile="laptop", seed=seed,
                        method_s=method_s, val_acc=val)


def test_bf16_is_a_default_candidate_only_within_one_std_on_the_selection_split_and_faster() -> None:
    fp32 = [rec(0, 0.80, 10.0, 4.0), rec(1, 0.82, 10.0, 4.0), rec(2, 0.84, 10.0, 4.0)]  # mean 0.82, std 0.02
    close_fast = compare_precision("kd", fp32, [rec(s, a, 8.0, 2.0) for s, a in [(0, .81), (1, .80), (2, .83)]])
    assert close_fast.within_one_std and close_fast.faster and close_fast.default_candidate
    assert close_fast.fp32_method_s == pytest.approx(4.0) and close_fast.bf16_method_s == pytest.approx(2.0)
    worse = compare_precision("kd", fp32, [rec(s, 0.78, 8.0) for s in range(3)])  # 4 points below: 2 std
    assert not worse.within_one_std and not worse.default_candidate and worse.bf16_method_s is None
    slower = compare_precision("kd", fp32, [rec(s, 0.82, 12.0) for s in range(3)])
    assert slower.within_one_std and not slower.faster and not slower.default_candidate
    table = precision_markdown([close_fast, worse, slower], "laptop", "fashion-mnist", {"processor": "x86_64"})
    assert table.count("\n| kd |") == 3 and "82.00 ± 2.00" in table and "| 4.0 → 2.0 |" in table
    # test accuracy is reported and never read: far worse on test, the same on the selection split, still a candidate
    blind = compare_precision("kd", fp32, [rec(s, a, 8.0, test=0.1) for s, a in [(0, .81), (1, .80), (2, .83)]])
    assert blind.default_candidate and blind.bf16_acc == pytest.approx(0.1)
    with pytest.raises(BenchError, match="same"):
        compare_precision("kd", fp32, [rec(0, 0.8, 1.0), rec(1, 0.8, 1.0)])


def test_the_study_refuses_without_fp32_records_and_runs_end_to_end(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_CPU_BF16", "1")  # bf16 is emulated where the CPU lacks it: slow, but it runs
    with pytest.raises(BenchError, match="labkit bench --profile smoke --only kd-edge --seeds 0 1"):
        run_precision_study(["kd-edge"], [0, 1], profile="smoke", out_dir=tmp_path, progress=False, log=None)
    run_bench("fashion-mnist", "smoke", [0, 1], entries=["kd-edge"], out_dir=tmp_path, progress=False, log=None)
    rows = run_precision_study(["kd-edge"], [0, 1], profile="smoke", out_dir=tmp_path, progress=False, log=None)
    folder = tmp_path / "precision" / "smoke" / "fashion-mnist"
    saved = json.loads((folder / "kd-edge-seed1.json").read_text())
    assert saved["box_precision"] == "bf16" and saved["synthesis_precision"] == "bf16"
    assert saved["method_s"] is not None and saved["student_s"] is not None
    fp32 = json.loads((tmp_path / "bench" / "smoke" / "fashion-mnist" / "kd-edge-seed1.json").read_text())
    assert fp32["box_precision"] == "fp32" and fp32["synthesis_precision"] == "fp32"
    assert rows[0].seeds == [0, 1] and rows[0].key == "kd-edge"
    summary = json.loads((folder / "precision.json").read_text())
    assert summary["rows"][0]["bf16_acc"] == pytest.approx(rows[0].bf16_acc)
    assert "| kd-edge | 0,1 |" in (folder / "precision.md").read_text()


def test_bf16_bench_records_cannot_be_the_fp32_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a profile defaults a method's synthesis to bf16, its bench records are no fp32 baseline: a clear error."""
    monkeypatch.setenv("LABKIT_CPU_BF16", "1")
    folder = tmp_path / "bench" / "smoke" / "fashion-mnist"
    r = rec(0, 0.8, 1.0)
    r.profile, r.method, r.synthesis_precision, r.box_precision = "smoke", "kd-edge", "bf16", "fp32"
    r.extras["bench"] = {"entry": "kd-edge", "options": {}}
    r.save(folder / "kd-edge-seed0.json")
    with pytest.raises(BenchError, match="precision=fp32"):
        run_precision_study(["kd-edge"], [0], profile="smoke", out_dir=tmp_path, progress=False, log=None)
