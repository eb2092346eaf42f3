"""DEVELOPING.md's worked example is real code: it registers, runs end to end and fills the record."""
import importlib.util
import sys
from pathlib import Path

from labkit.methods.base import METHODS
from labkit.studies.runner import run_method

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "uniform_noise_kd.py"


def test_worked_example_runs_and_is_short():
    assert len(EXAMPLE.read_text().splitlines()) < 60
    spec = importlib.util.spec_from_file_location("uniform_noise_kd", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    try:
        run = run_method("uniform-noise-kd", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False,
                         images=400)
        rec = run.record
        assert rec.queries == 400 and rec.transfer_set_size == 360 and rec.holdout_size == 40
        assert rec.ingredients == {"uniform-noise": {"rows": 360, "holdout_rows": 40, "queries": 400}}
        assert rec.loss == "soft-ce" and rec.target_kind == "probabilities"
        assert rec.selection == "teacher-labelled noise holdout" and 0.0 <= rec.student_acc <= 1.0
    finally:
        METHODS.pop("uniform-noise-kd", None)
