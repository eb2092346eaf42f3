"""Notebook hygiene: every notebook is stored clean and built the lab's way, and the checker catches bad ones.

The checker is ``labkit.teaching.notebook_hygiene`` (``python -m labkit.teaching.notebook_hygiene notebooks/*.ipynb``).
Here it is run on every notebook in ``notebooks/``, on a generated good notebook (must pass) and on generated bad ones
(outputs, execution counts, stored widget state, no exercise, no self-check, ...: each must be reported).
The CI plumbing is checked too: ``make test`` runs nbval over every notebook in the smoke profile, and
``.ci/run`` prints the whole CI run time at the end, even when the run fails.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from labkit.core.paths import REPO_ROOT
from labkit.teaching import notebook_hygiene
from labkit.teaching.prose import MAX_ASSERTS, MAX_MARKDOWN_WORDS, claim_asserts, markdown_words

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
ORIENTATION = REPO_ROOT / "notebooks" / "00_orientation.ipynb"
#: terms a later notebook uses before explaining them: the glossary in notebook 00 defines each one, and every other
#: notebook links its first use to it ("top-2 agreement" is another measure, not the glossary's agreement)
GLOSSARY_TERMS = {"ingredient": r"\bingredients?\b", "rung": r"\brungs?\b", "ladder": r"\bladders?\b",
                  "transfer set": r"\btransfer[ -]sets?\b", "Sign-OPT": r"\bSign-OPT\b",
                  "agreement": r"(?<!top-2 )\bagreement\b"}
GLOSSARY_LINK = re.compile(r"\[[^\]\n]*\]\(00_orientation\.ipynb#glossary\)")


def _good_notebook() -> nbformat.NotebookNode:
    """A minimal notebook that follows every convention of the lab."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    params = nbformat.v4.new_code_cell("PROFILE = None  # smoke | laptop | paper\nSEED = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · A test notebook\n\nYou will see a tiny example.\n\n"
                                      "## Learning goals\n\n* Pass the hygiene check."),
        params,
        nbformat.v4.new_markdown_cell("Some prose before the code."),
        nbformat.v4.new_code_cell("x = 1 + 1\nassert x == 2"),
        nbformat.v4.new_markdown_cell("## Your turn\n\nWrite `double(x)`."),
        nbformat.v4.new_code_cell("from labkit.teaching.exercises.kd_loss import check_kd_loss\n\n"
                                  "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n"
                                  "check_kd_loss(double)",
                                  metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "answer",
                                                         "locked": False, "schema_version": 3}}),
        nbformat.v4.new_markdown_cell("### Check (graded)"),
        nbformat.v4.new_code_cell("assert check_kd_loss(double).passed",
                                  metadata={"nbgrader": {"solution": False, "grade": True, "grade_id": "check",
                                                         "points": 1, "locked": True, "schema_version": 3}}),
    ]
    return nb


def _write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def _with_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cell = nb.cells[3]
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    return nb


# ------------------------------------------------------------------ the repository's notebooks


def test_the_lab_has_notebooks() -> None:
    """The checks below must have something to check."""
    assert NOTEBOOKS, f"no notebooks found in {REPO_ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_is_clean_and_complete(path: Path) -> None:
    """Stored without outputs; title, learning goals, parameters cell, exercise with self-check and solution."""
    found = notebook_hygiene.problems(path)
    assert found == [], f"{path.name}: " + "; ".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_is_valid_nbformat_with_a_python_kernel(path: Path) -> None:
    """Valid nbformat 4, and a kernelspec so JupyterLab starts the kernel without asking."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("language") == "python", "notebook has no Python kernelspec"
    title = nb.cells[0].source.lstrip().splitlines()[0]
    assert title.startswith(f"# {path.name[:2]}"), f"title {title!r} should start with '# {path.name[:2]} · '"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_is_short_enough_to_read(path: Path) -> None:
    """At most 1,000 words of Markdown, and at most 8 asserts outside the "Your turn" exercise (each one a claim the
    prose makes; query accounting and widget behaviour are tested in tests/, not in the notebook)."""
    words, asserts = markdown_words(path), claim_asserts(path)
    assert words <= MAX_MARKDOWN_WORDS, f"{path.name}: {words} words of Markdown (at most {MAX_MARKDOWN_WORDS})"
    assert asserts <= MAX_ASSERTS, f"{path.name}: {asserts} asserts outside the exercise (at most {MAX_ASSERTS})"


def test_density_counts_words_and_asserts_outside_the_exercise(tmp_path: Path) -> None:
    """Control: the good notebook is within both limits; one more word than the limit, or one more assert in a
    section, is over it; asserts in the 'Your turn' section (its reference solution included) are not counted."""
    good = _write(_good_notebook(), tmp_path / "good.ipynb")
    assert markdown_words(good) == 33 and claim_asserts(good) == 1
    wordy = _good_notebook()
    wordy.cells[2].source = "word " * MAX_MARKDOWN_WORDS
    assert markdown_words(_write(wordy, tmp_path / "wordy.ipynb")) > MAX_MARKDOWN_WORDS
    checky = _good_notebook()
    checky.cells[3].source = "\n".join(["x = 1"] + ["assert x == 1"] * MAX_ASSERTS)
    checky.cells[7].source += "\n" + "\n".join(["assert True"] * 5)  # the reference solution: not counted
    assert claim_asserts(_write(checky, tmp_path / "checky.ipynb")) == MAX_ASSERTS
    checky.cells.append(nbformat.v4.new_markdown_cell("## After the exercise"))
    checky.cells.append(nbformat.v4.new_code_cell("assert 1 < 2"))
    assert claim_asserts(_write(checky, tmp_path / "checky.ipynb")) == MAX_ASSERTS + 1


def _markdown(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def unlinked_terms(markdown: str) -> list[str]:
    """The glossary terms whose first use in ``markdown`` is not inside a link to the glossary."""
    links = [m.span() for m in GLOSSARY_LINK.finditer(markdown)]
    missing = []
    for term, pattern in GLOSSARY_TERMS.items():
        first = re.search(pattern, markdown, re.I)
        if first and not any(a <= first.start() < b for a, b in links):
            missing.append(term)
    return missing


def test_the_glossary_defines_every_term() -> None:
    """Notebook 00 has a ``## Glossary`` with the ``glossary`` anchor, and a bold entry for every term."""
    glossary = next(c for c in _markdown(ORIENTATION).split("\n## ") if c.startswith("Glossary"))
    assert '<a id="glossary"></a>' in glossary
    for term in GLOSSARY_TERMS:
        assert f"**{term}**" in glossary, f"the glossary has no entry for {term!r}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p != ORIENTATION], ids=lambda p: p.name)
def test_every_glossary_term_is_linked_where_it_first_appears(path: Path) -> None:
    """A notebook's first use of a glossary term links to ``00_orientation.ipynb#glossary``."""
    assert unlinked_terms(_markdown(path)) == [], f"{path.name}: link the first use to 00_orientation.ipynb#glossary"


def test_control_an_unlinked_first_use_is_reported() -> None:
    """Control: a term used before its link is reported; linked first uses, and top-2 agreement, are not."""
    assert unlinked_terms("The ladder, then the [ladder](00_orientation.ipynb#glossary).") == ["ladder"]
    assert unlinked_terms("Each [rung](00_orientation.ipynb#glossary) of the ladder: top-2 agreement.") == ["ladder"]
    assert unlinked_terms("[Ingredients](00_orientation.ipynb#glossary) and Sign-OPT") == ["Sign-OPT"]


# ------------------------------------------------------------------ the checker itself


def test_checker_accepts_a_good_notebook(tmp_path: Path) -> None:
    """Positive control: a notebook built the lab's way has no problems, and the CLI exits 0."""
    path = _write(_good_notebook(), tmp_path / "good.ipynb")
    assert notebook_hygiene.problems(path) == []
    assert notebook_hygiene.main([str(path)]) == 0


def test_checker_rejects_stored_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Outputs and execution counts are reported, and the CLI exits 1 naming the file."""
    path = _write(_with_outputs(_good_notebook()), tmp_path / "with_outputs.ipynb")
    found = notebook_hygiene.problems(path)
    assert any("stored with outputs" in msg for msg in found), found
    assert any("execution count" in msg for msg in found), found
    assert notebook_hygiene.main([str(path)]) == 1
    assert "with_outputs.ipynb: cell 3 is stored with outputs" in capsys.readouterr().out


def test_checker_rejects_stored_widget_state(tmp_path: Path) -> None:
    """Saved widget state is output too (JupyterLab's 'Save Widget State Automatically')."""
    nb = _good_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    path = _write(nb, tmp_path / "widget_state.ipynb")
    assert any("widget state" in msg for msg in notebook_hygiene.problems(path))
    assert notebook_hygiene.strip(path) is True
    assert notebook_hygiene.problems(path) == []


def test_checker_rejects_a_notebook_without_an_exercise(tmp_path: Path) -> None:
    """No 'Your turn' section, no check_...() call and no reference solution: all three are reported."""
    nb = _good_notebook()
    nb.cells = nb.cells[:4]
    path = _write(nb, tmp_path / "no_exercise.ipynb")
    found = notebook_hygiene.problems(path)
    assert any("'Your turn'" in msg for msg in found), found
    assert any("self-check" in msg for msg in found), found
    assert any("reference solution" in msg for msg in found), found
    assert notebook_hygiene.main([str(path)]) == 1


def test_checker_rejects_an_exercise_without_a_self_check(tmp_path: Path) -> None:
    """A 'Your turn' section whose code never calls a labkit check_...() is not an exercise with a self-check."""
    nb = _good_notebook()
    nb.cells[5].source = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    nb.cells[7].source = "assert double(2) == 4"
    found = notebook_hygiene.problems(_write(nb, tmp_path / "no_check.ipynb"))
    assert found == ["no exercise self-check (a labkit check_...() call)",
                     "no autograded test cell (nbgrader grade=True with points) calling the exercise's check_...()"]


@pytest.mark.parametrize("breakage, expected", [
    ("no_title", "markdown title"),
    ("no_goals", "learning goals"),
    ("no_parameters", "tagged 'parameters'"),
])
def test_checker_rejects_missing_structure(tmp_path: Path, breakage: str, expected: str) -> None:
    """Each missing piece of the lab's structure is reported on its own."""
    nb = _good_notebook()
    if breakage == "no_title":
        nb.cells[0].source = nb.cells[0].source.replace("# 99 · A test notebook", "A test notebook")
    elif breakage == "no_goals":
        nb.cells[0].source = "# 99 · A test notebook\n\nSome text."
    else:
        nb.cells[1].metadata["tags"] = []
    found = notebook_hygiene.problems(_write(nb, tmp_path / f"{breakage}.ipynb"))
    assert len(found) == 1 and expected in found[0], found


def test_checker_reports_unreadable_files(tmp_path: Path) -> None:
    """A file that is not JSON gives one clear problem instead of a crash."""
    path = tmp_path / "broken.ipynb"
    path.write_text("{ not json")
    found = notebook_hygiene.problems(path)
    assert len(found) == 1 and found[0].startswith("cannot read as JSON")


def test_strip_makes_a_notebook_clean_and_is_idempotent(tmp_path: Path) -> None:
    """``strip`` removes outputs and counts in place, keeps the cells, and a second strip changes nothing."""
    path = _write(_with_outputs(_good_notebook()), tmp_path / "dirty.ipynb")
    sources_before = [c["source"] for c in json.loads(path.read_text())["cells"]]
    assert notebook_hygiene.strip(path) is True
    assert notebook_hygiene.problems(path) == []
    assert [c["source"] for c in json.loads(path.read_text())["cells"]] == sources_before
    assert notebook_hygiene.strip(path) is False
    nbformat.validate(nbformat.read(path, as_version=4))


def test_cli_strip_flag_cleans_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--strip`` fixes outputs in place, so a notebook whose only fault was outputs then passes."""
    path = _write(_with_outputs(_good_notebook()), tmp_path / "dirty.ipynb")
    assert notebook_hygiene.main(["--strip", str(path)]) == 0
    assert f"stripped {path}" in capsys.readouterr().out


# ------------------------------------------------------------------ CI plumbing


def test_make_test_runs_nbval_on_every_notebook_in_the_smoke_profile() -> None:
    """``make test`` = unit tests + nbval over notebooks/ with LABKIT_PROFILE=smoke (dry run: nothing executes)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "test"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    nbval = [line for line in out.splitlines() if "--nbval" in line]
    assert nbval, out
    assert "LABKIT_PROFILE=smoke" in nbval[0] and " notebooks" in nbval[0], nbval[0]
    # the one notebook tier: notebooks/conftest.py re-runs every cell under the inline backend, which Agg would hide
    assert "MPLBACKEND" not in nbval[0] and (REPO_ROOT / "notebooks" / "conftest.py").is_file(), nbval[0]
    assert any("pytest tests" in line for line in out.splitlines()), out


@pytest.mark.parametrize("make_exit", [0, 3])
def test_ci_run_prints_the_whole_run_time(tmp_path: Path, make_exit: int) -> None:
    """``.ci/run`` ends with 'CI run time: N s (exit C)', also when ``make test`` fails.

    ``make`` and ``id`` are replaced by stand-ins on PATH (a non-root user: no apt-get), so this takes a second.
    """
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # `make setup` succeeds, `make test` exits with make_exit
    (fake_bin / "make").write_text(f"#!/bin/sh\necho \"fake make $*\"\n[ \"$1\" = test ] && exit {make_exit}\nexit 0\n")
    (fake_bin / "id").write_text("#!/bin/sh\necho 1000\n")
    for tool in fake_bin.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(["bash", str(REPO_ROOT / ".ci" / "run")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    lines = run.stdout.strip().splitlines()
    assert run.returncode == make_exit, run.stdout + run.stderr
    assert "fake make setup" in run.stdout and run.stdout.index("fake make setup") < run.stdout.index("fake make test")
    assert lines and lines[-1].startswith("CI run time: ") and lines[-1].endswith(f"s (exit {make_exit})"), lines
    assert "apt-get" not in run.stdout.replace("skipping apt-get", "")
