"""nbgrader assignments from the lab's notebooks: ``python -m labkit course build`` (``make assignments``).

The notebooks in ``notebooks/`` stay the source of truth (full solutions, run by nbval). Each one's "Your turn" is an
nbgrader solution cell (the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) and an autograded test
cell with points. This module lays them out as an nbgrader course (``source/<assignment>/``), runs nbgrader's
``generate_assignment`` (student versions in ``release/``), and autogrades collected work. A cleared answer becomes
``return None`` (not nbgrader's default ``raise NotImplementedError()``), so an unanswered exercise fails its own
test cell while the rest of the notebook still runs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from labkit.core.errors import LabkitError
from labkit.core.paths import REPO_ROOT

COURSE_ID = "labkit"
#: what nbgrader leaves where a solution was (inside the exercise's function)
CODE_STUB = "# YOUR CODE HERE\nreturn None"
CONFIG = f'''c = get_config()  # noqa: F821 (nbgrader's config file)
c.CourseDirectory.course_id = "{COURSE_ID}"
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
c.ExecutePreprocessor.timeout = 900
c.Execute.timeout = 900
c.Execute.interrupt_on_timeout = False
'''


def notebooks_dir() -> Path:
    """The lab's notebooks (in the checkout)."""
    return REPO_ROOT / "notebooks"


def assignment_name(notebook: Path) -> str:
    """One assignment per notebook, named by its file stem (``01_kd_fundamentals``)."""
    return notebook.stem


def exercise_cells(notebook: Path) -> tuple[list[nbformat.NotebookNode], list[nbformat.NotebookNode]]:
    """The notebook's nbgrader solution cells and autograded test cells."""
    nb = nbformat.read(notebook, as_version=4)
    meta = [(c, c.get("metadata", {}).get("nbgrader", {})) for c in nb.cells if c.cell_type == "code"]
    return [c for c, m in meta if m.get("solution")], [c for c, m in meta if m.get("grade")]


def _nbgrader(args: list[str], root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    # nbgrader runs the `alembic` command when it creates a gradebook: this interpreter's scripts come first on PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(env or {}), "PATH": path})
    if done.returncode != 0:
        raise LabkitError(f"nbgrader {args[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                          f"{done.stderr[-3000:]}")
    return done


def build(out: str | Path, notebooks: list[Path] | None = None) -> Path:
    """An nbgrader course in ``out``: ``source/`` (the full notebooks), ``release/`` (student versions, solutions
    removed), ``nbgrader_config.py`` and the gradebook. Returns ``out``."""
    root = Path(out).resolve()
    chosen = notebooks or sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not chosen:
        raise LabkitError(f"no notebooks under {notebooks_dir()}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    for nb in chosen:
        solutions, tests = exercise_cells(nb)
        if not solutions or not tests:
            raise LabkitError(f"{nb.name} has no nbgrader solution cell or no autograded test cell")
        dest = root / "source" / assignment_name(nb)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(nb, dest / nb.name)
    done = _nbgrader(["generate_assignment", "*", "--force"], root)  # every assignment in one process
    missing = [nb.name for nb in chosen if not (root / "release" / assignment_name(nb) / nb.name).exists()]
    if missing:
        raise LabkitError(f"nbgrader did not release {missing}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return root


def autograde(root: str | Path, assignment: str, work: dict[str, str | Path],
              env: dict[str, str] | None = None) -> dict[str, float]:
    """Collect each learner's notebook (``work``: learner → notebook) for ``assignment``, autograde them all in one
    nbgrader run, and return each learner's score."""
    from nbgrader.api import Gradebook

    root = Path(root).resolve()
    for student, notebook in work.items():
        dest = root / "submitted" / student / assignment
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, dest / f"{assignment}.ipynb")
    _nbgrader(["autograde", assignment, "--force", "--create"], root, env)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        return {student: float(gb.find_submission(assignment, student).score) for student in work}


def max_score(root: str | Path, assignment: str) -> float:
    """The points an assignment is worth."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{Path(root).resolve() / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        return float(gb.find_assignment(assignment).max_score)
