"""No setting is justified by test accuracy: not in a config comment or docstring, not in the docs.

Settings are chosen on the validation split, on a data-free method's teacher-labelled holdout, from the
paper, or by compute; ``docs/selection.md`` lists every measured choice and what it was chosen on. A sentence
that ties a choice to a test figure fails here, except under a heading that says the text is *superseded*
history (the pages keep the record of what was once done wrong).
"""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from labkit.core.paths import REPO_ROOT

#: a test-split figure ...
TEST_FIGURE = re.compile(r"\btest[- ](acc(uracy|uracies)?|figures?|split|set|results?|numbers?|scores?)\b", re.I)
#: ... named as the reason for a choice
CHOICE = re.compile(r"\b(chos(e|en)|choose|choosing|choice|pick(s|ed)?|tun(e|ed|ing)|select(s|ed)?|read off|"
                    r"judged|decided|settled|kept because|raised? (it|the))\b", re.I)
#: a sentence that says, before naming the test figure, that it was *not* used is fine
NEGATION = re.compile(r"\b(never|not|no|without|instead of)\b", re.I)
ALLOWED_BASES = ("validation split", "teacher-labelled holdout", "the paper", "compute budget")


def _sentences(text: str) -> list[str]:
    """Sentences, never across a paragraph, a heading or a table row."""
    blocks, current = [], []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "|")):
            blocks.append(" ".join(current))
            blocks.append(line)
            current = []
        else:
            current.append(line.strip())
    blocks.append(" ".join(current))
    out = []
    for block in blocks:
        out += [s.strip() for s in re.split(r"(?<=[.!?;:])\s+", re.sub(r"\s+", " ", block)) if s.strip()]
    return out


def offending(text: str) -> list[str]:
    """Sentences of ``text`` that give a test figure as the reason for a choice."""
    out = []
    for s in _sentences(text):
        test = TEST_FIGURE.search(s)
        if test and CHOICE.search(s) and not NEGATION.search(s[:test.start()]):  # "never ... test accuracy" is fine
            out.append(s)
    return out


def _python_prose(path: Path) -> str:
    """The comments and string literals of a module (its docstrings and config comments)."""
    parts = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING):
            parts.append(tok.string.strip("#\"' ") + ".")
    return "\n".join(parts)


def _current_markdown(path: Path) -> str:
    """A Markdown page without its superseded-history sections (a heading with "Superseded" and what follows it,
    up to the next heading of the same or a higher level)."""
    out, skip_level = [], None
    for line in path.read_text().splitlines():
        m = re.match(r"^(#+)\s", line)
        if m:
            level = len(m.group(1))
            if skip_level is not None and level <= skip_level:
                skip_level = None
            if skip_level is None and "superseded" in line.lower():
                skip_level = level
        if skip_level is None:
            out.append(line)
    return "\n".join(out)


def test_the_detector_catches_a_test_selected_setting() -> None:
    assert offending("The laptop epochs were chosen on test accuracy.")
    assert offending("We kept τ = 20; it was read off a test figure of the full run.")
    assert not offending("The epoch is selected on the validation split; the test split is never used for it.")
    assert not offending("Test accuracy is measured by the runner.")
    assert offending("The 30k setting was chosen on the test split, not on the validation split.")
    assert not offending("Never choose a setting from test accuracy.")


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "labkit").rglob("*.py")), ids=lambda p: p.name)
def test_no_config_comment_or_docstring_cites_test_accuracy(path: Path) -> None:
    bad = offending(_python_prose(path))
    assert not bad, f"{path.relative_to(REPO_ROOT)} justifies a setting by test accuracy: {bad}"


DOCS = sorted([*(REPO_ROOT / "docs").rglob("*.md"), REPO_ROOT / "README.md", REPO_ROOT / "DEVELOPING.md"])


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_no_doc_cites_test_accuracy_as_the_reason_for_a_setting(path: Path) -> None:
    bad = offending(_current_markdown(path))
    assert not bad, (f"{path.relative_to(REPO_ROOT)} justifies a setting by test accuracy: {bad}. Choose on the "
                     "validation split or the method's holdout, or move the history under a 'Superseded' heading.")


def test_every_listed_choice_names_a_non_test_basis() -> None:
    """Every table of docs/selection.md has a "chosen on" column, and no row of it names the test split."""
    lines = (REPO_ROOT / "docs" / "selection.md").read_text().splitlines()
    checked = 0
    for i, line in enumerate(lines):
        if not line.startswith("| ") or (i > 0 and lines[i - 1].startswith("|")):
            continue  # not the header row of a table
        header = [c.strip().lower() for c in line.strip("|").split("|")]
        assert "chosen on" in header, f"a docs/selection.md table lacks a 'chosen on' column: {line}"
        col = header.index("chosen on")
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            basis = [c.strip() for c in row.strip("|").split("|")][col].lower()
            assert any(b in basis for b in ALLOWED_BASES) and "test" not in basis, row
            checked += 1
    assert checked >= 6, "docs/selection.md lists the re-selected settings in its tables"
