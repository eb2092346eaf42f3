"""Numbers in the notebooks' prose are tied to committed records, or not written at all.

The rule and its grammar are in ``labkit.teaching.prose`` (and DEVELOPING.md, "Notebooks"): a result figure in a
notebook's Markdown (a percentage, points, a count of rows / queries / images / samples / impressions / labels /
examples, a bare decimal such as 0.735) must be tied by ``assert committed_figure("<figure>", value)`` in a code cell
of the same notebook, and its Markdown cell must name the committed records; a setting (after ``=``, ``<``, ``≤``...)
or a paper's reported figure ("the paper reports ...") is not a result figure. nbval runs the asserts, so a tied
figure that drifts from the records fails there; this file checks that every figure has its tie.

Controls: generated notebooks with a stray figure, a tie whose cell does not name the records, and a tie outside an
``assert`` must fail; one with a tied figure, a setting and a reported figure must pass.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from labkit.core.paths import REPO_ROOT
from labkit.teaching.prose import committed_figure, exempt_reason, result_figures, tied_figures, untied_figures

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _notebook(tmp_path: Path, markdown: str, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · A test notebook"), nbformat.v4.new_markdown_cell(markdown),
                nbformat.v4.new_code_cell(code)]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


# ------------------------------------------------------------------ the repository's notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_prose_figure_is_tied_to_committed_records(path: Path) -> None:
    """Each result figure in the Markdown has an ``assert committed_figure(...)``, in a cell naming the records."""
    found = untied_figures(path)
    assert found == [], f"{path.name}:\n" + "\n".join(found)


# ------------------------------------------------------------------ the grammar


@pytest.mark.parametrize("text, numbers, kind", [
    ("the run shows 41,421 rows", [41421], "count"),
    ("adds little to 60 000 bank rows", [60000], "count"),
    ("at most 20,000 queries per class", [20000], "count"),
    ("the student reaches 88.2 % on the test split", [88.2], "percent"),
    ("a 49.5% student", [49.5], "percent"),
    ("below it in every seed, by 0.4 to 1.1 points", [0.4, 1.1], "points"),
    ("subsets of 500, 2,000 and 8,000 labelled images", [500, 2000, 8000], "count"),
    ("48k impressions", [48000], "count"),
    ("BD's mean ρ was 0.735", [0.735], "decimal"),
])
def test_result_figures_are_found(text: str, numbers: list[float], kind: str) -> None:
    """Percentages, points, counts (lists and thousands separators included) and bare decimals are found."""
    found = result_figures(text)
    assert [f.value for f in found] == numbers and {f.kind for f in found} == {kind}, found


@pytest.mark.parametrize("text", [
    "a LeNet-5 teacher", "top-2 agreement", "the first 1/2 of the impressions", "3 of the 5 most similar pairs",
    "one query per image", "1 query for its label", "U[0, 1] noise", "at iteration 0, then 5",
])
def test_other_numbers_are_not_result_figures(text: str) -> None:
    """Names, ranks, fractions, counts of one and numbers without a unit are not result figures."""
    assert result_figures(text) == []


@pytest.mark.parametrize("text, reason", [
    ("with copies=1 images", "setting"),
    ("a budget = 2,000 queries", "setting"),
    ("bisected to < 1 %", "setting"),
    ("the paper reports 79.62 % with 48k impressions", "reported"),
    ("The\nauthors spend up to 20,000 queries per pair", "reported"),
    ("The paper was long. The lab reached 75 %", None),
    ("the student reached 75 %", None),
])
def test_settings_and_reported_figures_are_exempt(text: str, reason: str | None) -> None:
    """A figure after ``=``/``<``/``≤`` is a setting, one after "the paper"/"reported" in its sentence is reported;
    a paper named in an earlier sentence exempts nothing."""
    figures = result_figures(text)
    assert figures, text
    assert {exempt_reason(text, f) for f in figures} == {reason}


def test_committed_figure_checks_the_value_as_written() -> None:
    """Fractions read as percent or points, rounded to the written digits; a wrong value or count raises."""
    assert committed_figure("88.2 %", 0.8824)
    assert committed_figure("by 0.4 to 1.1 points", 0.0041, 0.0108)
    assert committed_figure("41,343 rows", 41343)
    assert committed_figure("about 50 %", 0.53, tolerance=5)
    with pytest.raises(AssertionError, match="88.2 %"):
        committed_figure("88.2 %", 0.8851)
    with pytest.raises(AssertionError, match="rows"):
        committed_figure("41,343 rows", 41421)
    with pytest.raises(AssertionError, match="2 result figures"):
        committed_figure("0.4 to 1.1 points", 0.004)


def test_ties_are_read_only_from_asserts() -> None:
    """``assert committed_figure("...")`` ties its figures; a bare call or a non-literal text ties nothing."""
    code = ('x = 1\nassert committed_figure("88.2 %", acc), "drifted"\ncommitted_figure("41 rows", n)\n'
            'assert prose.committed_figure(TEXT, v)\n%matplotlib inline')
    assert [(f.value, f.kind) for f in tied_figures(code)] == [(88.2, "percent")]


# ------------------------------------------------------------------ controls on generated notebooks


def test_control_a_stray_figure_fails(tmp_path: Path) -> None:
    """A notebook that quotes a run's figure with no tie breaks the rule."""
    path = _notebook(tmp_path, "On the committed leaderboard the student reaches 88.2 % with 41,421 rows.", "x = 1")
    found = untied_figures(path)
    assert len(found) == 2 and "'88.2 %'" in found[0] and "41,421 rows" in found[1], found


def test_control_a_tied_figure_passes(tmp_path: Path) -> None:
    """Tied figures in a cell naming the committed records pass, next to a setting and a reported figure."""
    path = _notebook(tmp_path, "At τ = 20 the committed leaderboard (`results/bench/...`) gives 88.2 % on 41,421 "
                               "rows; the paper reports 79.62 %.",
                     'assert committed_figure("88.2 %", acc) and committed_figure("41,421 rows", rows)')
    assert untied_figures(path) == []


def test_control_a_tie_outside_an_assert_or_without_named_records_fails(tmp_path: Path) -> None:
    """The tie must be an ``assert``, and the Markdown must say the figure comes from the committed records."""
    bare = _notebook(tmp_path, "The committed leaderboard gives 88.2 %.", 'committed_figure("88.2 %", acc)')
    assert len(untied_figures(bare)) == 1
    unnamed = _notebook(tmp_path, "Seed 0 gave 88.2 %.", 'assert committed_figure("88.2 %", acc)')
    found = untied_figures(unnamed)
    assert len(found) == 1 and "does not name the committed records" in found[0], found
