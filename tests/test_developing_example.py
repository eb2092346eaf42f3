"""DEVELOPING.md's worked example is real code: it registers, runs end to end and fills the record, and the code
DEVELOPING.md shows is that file's."""
import importlib.util
import re
import sys
from pathlib import Path

from labkit.methods.base import METHODS
from labkit.studies.runner import run_method

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "uniform_noise_kd.py"


def shown_code(example: str) -> str:
    """The example's classes as DEVELOPING.md shows them: from the first decorator to the ``__main__`` block, without
    the docstrings (each one line) and the blank line after each."""
    lines = example.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("@"))
    end = next((i for i, line in enumerate(lines) if line.startswith("if __name__")), len(lines))
    shown: list[str] = []
    after_docstring = False
    for line in lines[start:end]:
        if line.strip().startswith('"""') or (after_docstring and not line.strip()):
            after_docstring = line.strip().startswith('"""')
            continue
        after_docstring = False
        shown.append(line)
    return "\n".join(shown).strip()


def developing_code(text: str) -> str:
    """The Python block under DEVELOPING.md's "Worked example" heading."""
    section = text.split("### Worked example", 1)[1]
    match = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert match, "DEVELOPING.md's worked example has no python block"
    return match.group(1).strip()


def test_developing_shows_the_example_file():
    assert developing_code((ROOT / "DEVELOPING.md").read_text()) == shown_code(EXAMPLE.read_text()), \
        "DEVELOPING.md's worked example differs from docs/examples/uniform_noise_kd.py: copy the file's classes over"


def test_control_a_changed_line_is_noticed():
    """Control: the same block with one changed line no longer matches."""
    text = (ROOT / "DEVELOPING.md").read_text().replace('access = "score"', 'access = "decision"', 1)
    assert developing_code(text) != shown_code(EXAMPLE.read_text())


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
