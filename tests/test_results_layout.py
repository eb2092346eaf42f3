"""One results layout, ``<results>/<study>/<profile>/<dataset>/``, and old records that stay readable.

The old layouts are rebuilt in a temporary folder from the committed records (copied byte for byte); every reader
must find them there, and afterwards they sit in the new layout, unchanged.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labkit.core.errors import UnknownNameError
from labkit.core.paths import REPO_ROOT
from labkit.studies import bench
from labkit.studies.few_labels import load_few_labels
from labkit.studies.leaderboard import LEADERBOARD_JSON, LEADERBOARD_MD, saved_leaderboard
from labkit.studies.paper_table import paper_records, paper_table_markdown
from labkit.studies.results_layout import (
    PRECISION,
    SCALE,
    STUDIES,
    migrate_results,
    old_layout_paths,
    results_root,
    stray_files,
    study_dir,
)

RESULTS = REPO_ROOT / "results"
BOARD = RESULTS / "bench" / "laptop" / "fashion-mnist"
PAPER = RESULTS / "paper-check" / "paper" / "fashion-mnist"
FEW = RESULTS / "few-labels" / "laptop" / "fashion-mnist"


def _old_layout(root: Path) -> dict[Path, bytes]:
    """The committed records copied into the three old layouts under ``root``: old path -> its bytes."""
    copies = {root / LEADERBOARD_JSON: BOARD / LEADERBOARD_JSON, root / LEADERBOARD_MD: BOARD / LEADERBOARD_MD,
              root / "laptop" / "fashion-mnist" / "kd-seed0.json": BOARD / "kd-seed0.json",
              root / "paper" / "leaderboard.md": PAPER / "leaderboard.md",
              root / "paper" / "fashion-mnist" / "kd-seed1.json": PAPER / "kd-seed1.json"}
    for seed in (0, 1, 2):
        for row in ("student", "kd"):
            copies[root / "few-labels" / "n500" / "laptop" / "fashion-mnist" / f"{row}-seed{seed}.json"] = \
                FEW / "n500" / f"{row}-seed{seed}.json"
    for dst, src in copies.items():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return {dst: src.read_bytes() for dst, src in copies.items()}


def _new_path(root: Path, old: Path) -> Path:
    rel = old.relative_to(root).parts
    if rel[0] in (LEADERBOARD_JSON, LEADERBOARD_MD):
        return root / "bench" / "laptop" / "fashion-mnist" / rel[0]
    if rel[0] == "laptop":
        return root / "bench" / Path(*rel)
    if rel[0] == "paper":
        return root / "paper-check" / "paper" / "fashion-mnist" / rel[-1]
    return root / "few-labels" / rel[2] / rel[3] / rel[1] / rel[4]  # few-labels/n<k>/<profile>/<dataset>/<file>


def test_the_committed_results_are_in_the_one_layout() -> None:
    """Checked on the committed studies' folders (a user's own ``run --out results/x.json`` may sit beside them)."""
    assert old_layout_paths(RESULTS) == []
    assert all(folder.is_dir() for folder in (BOARD, PAPER, FEW))
    assert (BOARD / LEADERBOARD_JSON).is_file() and (PAPER / "leaderboard.md").is_file()
    assert sorted(p.name for p in FEW.iterdir()) == ["n2000", "n500", "n8000"]


def test_study_dir_is_the_one_place_and_knows_its_studies(tmp_path: Path) -> None:
    assert study_dir("bench", "laptop", "fashion-mnist", tmp_path) == tmp_path / "bench" / "laptop" / "fashion-mnist"
    run = bench.run_path(tmp_path, "smoke", "mnist", "kd", 2)
    assert run == tmp_path / "bench" / "smoke" / "mnist" / "kd-seed2.json"
    with pytest.raises(UnknownNameError, match="study"):
        study_dir("paper", "paper", "fashion-mnist", tmp_path)


def test_old_records_are_read_where_they_were_and_moved_unchanged(tmp_path: Path) -> None:
    old = _old_layout(tmp_path)
    assert len(old_layout_paths(tmp_path)) == 5  # the root board's two files, laptop/, paper/, few-labels/n500/
    assert len(stray_files(tmp_path)) == len(old)  # the control: every old file is outside the layout
    # each reader finds its old records (the first one to look moves them all)
    board = saved_leaderboard("fashion-mnist", "laptop", tmp_path)
    committed_runs = len(json.loads((BOARD / LEADERBOARD_JSON).read_text())["runs"])
    assert board is not None and board.profile == "laptop" and len(board.runs) == committed_runs > 0
    assert [r.seed for r in paper_records("fashion-mnist", tmp_path)["kd"]] == [1]
    assert "| kd | full |" in paper_table_markdown("fashion-mnist", tmp_path)
    points = load_few_labels("laptop", out_dir=tmp_path, sizes=[500])
    assert {(p.row, p.size) for p in points} == {("student", 500), ("kd", 500)}
    assert all(len(p.accs) == 3 for p in points)
    saved = bench.load_saved_run(bench.run_path(tmp_path, "laptop", "fashion-mnist", "kd", 0), "kd", "laptop",
                                 "fashion-mnist", 0, {})
    assert saved is not None  # a resumed bench reuses an old run
    # every file moved to its new path, byte for byte; nothing old is left, and a second migration moves nothing
    for path, content in old.items():
        assert not path.exists() and _new_path(tmp_path, path).read_bytes() == content, path
    assert old_layout_paths(tmp_path) == [] and stray_files(tmp_path) == [] and migrate_results(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(STUDIES) - {PRECISION, SCALE})


def test_migration_never_overwrites_and_leaves_what_it_cannot_place(tmp_path: Path) -> None:
    new_run = study_dir("bench", "smoke", "mnist", tmp_path) / "kd-seed0.json"
    new_run.parent.mkdir(parents=True)
    new_run.write_text("new")
    old_run = tmp_path / "smoke" / "mnist" / "kd-seed0.json"
    old_run.parent.mkdir(parents=True)
    old_run.write_text("old")
    (tmp_path / LEADERBOARD_JSON).write_text(json.dumps({"schema": "no profile or data set"}))
    moved = migrate_results(tmp_path)
    assert moved == [] and new_run.read_text() == "new" and old_run.read_text() == "old"
    assert (tmp_path / LEADERBOARD_JSON).exists()
    other = tmp_path / "smoke" / "mnist" / "student-seed0.json"
    other.write_text("student")
    assert results_root(tmp_path) == tmp_path  # a reader's look migrates what it can
    assert not other.exists() and (new_run.parent / other.name).read_text() == "student"


def test_a_record_says_which_cpu_ran_it_and_an_old_one_says_nothing() -> None:
    """Timings and last bits differ between CPUs (AVX2 against AVX-512 kernels): a new record names its CPU; an older
    record read back must not be credited to the machine that reads it."""
    from labkit.core.device import cpu_summary
    from labkit.core.results import ResultRecord

    zen3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse2 avx fma avx2\n\nprocessor\t: 1\nflags\t\t: avx512f\n")
    assert cpu_summary(zen3) == "AMD EPYC (family 25 model 1; avx2)"  # the first processor's lines only
    assert "avx512f, avx2" in cpu_summary(zen3.replace("avx2\n\n", "avx2 avx512f\n\n", 1))
    rec = ResultRecord("kd", "score", "fashion-mnist", "lenet5", "lenet5-half", 0.9, 0.8, 0.8, 1, 1, 1.0, "cpu",
                       "smoke", 0)
    assert rec.cpu == cpu_summary()
    old = rec.to_dict()
    del old["cpu"]
    assert ResultRecord.from_dict(old).cpu == ""
