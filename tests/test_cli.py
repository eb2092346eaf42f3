"""The command line: help everywhere, a real run writing records, clear errors."""
import json
import subprocess
import sys

import pytest

from labkit.studies.cli import build_parser, main


def _help_text(argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--help"])
    assert exit_.value.code == 0


@pytest.mark.parametrize("argv", [[], ["data", "fetch"], ["teacher", "train"], ["run"], ["run", "kd"],
                                  ["run", "student"]])
def test_help_works_everywhere(argv, capsys):
    _help_text(argv)
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if argv != ["data", "fetch"]:  # the one short help: a single positional argument
        assert len(out) > 200, out


def test_run_kd_on_toy_data_writes_records(tmp_path, monkeypatch, capsys):
    import torch

    out = tmp_path / "kd.json"
    threads = torch.get_num_threads()
    try:
        code = main(["run", "kd", "--dataset", "toy2d-blobs-3", "--profile", "smoke", "--no-progress",
                     "--device", "cpu", "--epochs", "3", "--threads", "1", "--out", str(out)])
        assert torch.get_num_threads() == 1  # --threads reaches torch (not the method's options)
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    records = json.loads(out.read_text())
    assert [r["method"] for r in records] == ["student", "kd"]
    kd = records[1]
    for key in ("method", "access", "dataset", "teacher_arch", "student_arch", "teacher_acc", "student_acc",
                "agreement", "queries", "transfer_set_size", "wall_s", "device", "profile", "seed", "torch"):
        assert key in kd
    assert kd["access"] == "score" and kd["queries"] == kd["transfer_set_size"] == 3000 and kd["profile"] == "smoke"
    assert records[0]["queries"] == 0
    assert "student" in capsys.readouterr().out


def test_bad_names_exit_2_with_a_clear_message(capsys):
    assert main(["run", "kd", "--dataset", "imagenet", "--no-progress"]) == 2
    assert "Unknown dataset 'imagenet'" in capsys.readouterr().err
    assert main(["run", "kd", "--profile", "huge", "--no-progress"]) == 2
    assert "Valid profiles are" in capsys.readouterr().err


def test_unknown_method_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "nosuch"])
    assert "invalid choice" in capsys.readouterr().err


def test_module_entry_point():
    res = subprocess.run([sys.executable, "-m", "labkit", "profiles"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "smoke" in res.stdout and "laptop" in res.stdout
