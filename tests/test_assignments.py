"""nbgrader round trip (issue 31): generate student versions, no solution left, the reference gets full marks, the
untouched student version gets zero for its exercise and still runs to the end."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbgrader")

from labkit.course import assignments  # noqa: E402

NOTEBOOKS = sorted(assignments.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))

#: the notebook the round trip executes (twice): the cheapest one on the smoke profile
GRADED = "02_decision_boundaries"


def _solution_lines(notebook: Path) -> list[str]:
    """The code lines between ### BEGIN SOLUTION and ### END SOLUTION (comments and blanks left out)."""
    out = []
    for cell in assignments.exercise_cells(notebook)[0]:
        body = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S)
        assert body, f"{notebook.name}: a solution cell without a solution region"
        out += [ln.strip() for ln in body.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assignments.build(tmp_path_factory.mktemp("nbgrader") / "course")


def test_every_notebook_becomes_an_assignment_with_no_solution_left(course: Path) -> None:
    for notebook in NOTEBOOKS:
        name = assignments.assignment_name(notebook)
        release = course / "release" / name / notebook.name
        assert release.exists(), f"{release} was not generated"
        text = release.read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        student = nbformat.read(release, as_version=4)
        answers = [c for c in student.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")]
        code = "\n".join(c.source for c in answers)
        assert answers and len(answers) == len(assignments.exercise_cells(notebook)[0])
        lines = {ln.strip() for ln in code.splitlines()}
        leaked = [ln for ln in _solution_lines(notebook) if len(ln) > 12 and ln in lines]
        assert not leaked, f"{notebook.name}: solution lines survive in the student version: {leaked}"
        assert "return None" in code  # the stub: an unanswered exercise returns None, it does not raise
        assert assignments.max_score(course, name) >= 1


def test_the_reference_gets_full_marks_and_the_blank_gets_zero_but_runs(course: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    source = next(p for p in NOTEBOOKS if p.stem == GRADED)
    full = assignments.max_score(course, GRADED)
    blank = course / "release" / GRADED / source.name
    assert assignments.autograde(course, GRADED, {"reference": source, "blank": blank}) == {"reference": full,
                                                                                          "blank": 0.0}
    graded = nbformat.read(course / "autograded" / "blank" / GRADED / source.name, as_version=4)
    errors = [(i, c.metadata.get("nbgrader", {}).get("grade_id")) for i, c in enumerate(graded.cells)
              if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors and all(grade_id and grade_id.endswith("-check") for _, grade_id in errors), errors
    last = [c for c in graded.cells if c.cell_type == "code"][-1]
    assert last.get("execution_count"), "the notebook did not run to its last cell"
