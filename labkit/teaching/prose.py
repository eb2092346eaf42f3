"""Numbers and length of a notebook's prose: the rule for result figures, and the density limits.

**The rule for numbers in prose.** A *result figure* in a notebook's Markdown (a percentage such as ``88.2 %``, a
difference in ``points``, a count of rows, queries, images, samples, impressions, labels or examples, or a bare
decimal with two or more places such as ``0.735``) either

* comes from the committed records (``results/...``): the Markdown cell names them ("committed" or a ``results/``
  path) and a code cell of the same notebook ties it with ``assert committed_figure("88.2 %", value)``; or
* is not written at all: the run prints it right above, and the prose refers to it ("the cell prints ...").

Two kinds of figures are not result figures and need no tie:

* a **setting or formula**: the figure comes right after ``=``, ``<``, ``>``, ``≤`` or ``≥`` (``τ = 20``,
  ``β = 0.1``, ``copies=1``, ``λ ≤ 0.05``, ``bisected to < 1 %``, ``⌈log₂ 100⌉ = 7 queries``);
* a **paper's reported figure**: "the paper('s)", "the authors('s)", "report(s)", "reported" or "published" comes
  earlier in the same sentence, at most 80 characters before it ("the paper reports 79.62 %", "IDEAL as published
  reaches about 60 %").

``result_figures`` finds the figures, ``exempt_reason`` says why one needs no tie, ``committed_figure`` is the tie
(it checks the value when the cell runs), ``tied_figures`` finds the ties in a notebook's code, and
``untied_figures`` lists what breaks the rule. ``tests/test_prose_numbers.py`` applies it to every notebook.

**Density.** ``markdown_words`` (all Markdown cells, split on white space) and ``claim_asserts`` (``assert``
statements outside the "Your turn" exercise section) have the limits ``MAX_MARKDOWN_WORDS`` and ``MAX_ASSERTS``.

``python -m labkit.teaching.prose notebooks/*.ipynb`` prints each notebook's words, asserts and untied figures.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_MARKDOWN_WORDS = 1000
MAX_ASSERTS = 8

#: one number: 41,421 / 60 000 (thin or plain space) / 88.2 / 48k; not part of a word, a fraction or a hyphenation
_NUM = r"(?<![\w/.\-^])(?:\d{1,3}(?:[,\u202f\u2009 ]\d{3})+(?![\d.])(?:\.\d+)?|\d+(?:\.\d+)?)[kM]?(?![\w/])"
#: "0.4 to 1.1", "2–3", "500, 2,000 and 8,000" (a comma list must end in "and", "or" or "to")
_LIST = rf"(?:\s*[–-]\s*{_NUM}|(?:\s*,\s*{_NUM})*,?\s+(?:and|or|to)\s+{_NUM})?"
_COUNT_NOUNS = r"(?:rows|queries|images|samples|impressions|labels|examples)"
_FILLER = r"(?:(?!(?:of|the|per|a|an|in|on|at|to|and|or)\b)[\w-]+\s+){0,2}"
#: a list of numbers ("0.4 to 1.1", "500, 2,000 and 8,000") and its unit
FIGURE = re.compile(
    rf"(?P<nums>{_NUM}{_LIST})"
    rf"(?:(?P<pct>\s?%)|\s+(?P<points>points)\b|\s+{_FILLER}(?P<count>{_COUNT_NOUNS})\b)"
)
#: a bare decimal with two or more places (a correlation, a loss): 0.735
DECIMAL = re.compile(r"(?<![\w/.\-^])\d+\.\d{2,}(?![\d%]|\s?%|\s+points)")
_ONE_NUM = re.compile(_NUM)
_SETTING = re.compile(r"[=≤≥<>]\s*$")
_REPORTED = re.compile(r"\b(the\s+paper'?s?|the\s+authors'?s?|reports?|reported|published)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n\s*\n")
_NAMES_RECORDS = re.compile(r"committed|results/", re.I)


@dataclass(frozen=True)
class Figure:
    """One number of a result figure in a text: its value as written, its kind, and where it stands."""

    text: str     # the whole match, e.g. "0.4 to 1.1 points"
    value: float  # this number, e.g. 1.1 (48k -> 48000)
    kind: str     # "percent", "points", "count" or "decimal"
    decimals: int  # digits after the point as written (48k: -3)
    start: int    # where the whole match starts in the text

    @property
    def key(self) -> tuple[float, str]:
        """What a tie must match: the value and the kind."""
        return (round(self.value, 6), self.kind)


def _number(token: str) -> tuple[float, int]:
    """A written number's value and its decimals (``48k`` -> 48000, -3; ``2,000`` -> 2000, 0)."""
    scale = {"k": 3, "M": 6}.get(token[-1], 0)
    digits = re.sub(r"[,\u202f\u2009 ]", "", token.rstrip("kM"))
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return float(digits) * 10 ** scale, decimals - scale


def result_figures(text: str) -> list[Figure]:
    """Every result figure in ``text``, one ``Figure`` per number, in order."""
    found: list[Figure] = []
    for match in FIGURE.finditer(text):
        kind = "percent" if match.group("pct") else "points" if match.group("points") else "count"
        for token in _ONE_NUM.findall(match.group("nums")):
            value, decimals = _number(token)
            found.append(Figure(match.group(0).strip(), value, kind, decimals, match.start()))
    for match in DECIMAL.finditer(text):
        if not any(f.start <= match.start() < f.start + len(f.text) for f in found):
            value, decimals = _number(match.group(0))
            found.append(Figure(match.group(0), value, "decimal", decimals, match.start()))
    return sorted(found, key=lambda f: f.start)


def exempt_reason(text: str, figure: Figure) -> str | None:
    """Why ``figure`` is not a result figure ("setting", "reported"), or None when it is one."""
    before = text[:figure.start]
    if _SETTING.search(before):
        return "setting"
    sentence = _SENTENCE_END.split(before)[-1][-80:]
    if _REPORTED.search(sentence):
        return "reported"
    return None


def committed_figure(prose: str, *values: float, tolerance: float | None = None) -> bool:
    """Check that ``prose`` (the figure as the Markdown writes it) reads ``values``, taken from committed records.

    One value per number in ``prose``, in order: a fraction for a percentage or points (0.882 reads "88.2 %"), an
    integer for a count, the number itself for a bare decimal. A value must round to the written figure (within
    half a unit of its last digit), or lie within ``tolerance`` of it (in the written units) for an "about" figure.
    Returns True; raises AssertionError naming the figure and the value otherwise. Use it in an ``assert``.
    """
    figures = result_figures(prose)
    if len(figures) != len(values):
        raise AssertionError(f"{prose!r} holds {len(figures)} result figures but {len(values)} values were given")
    for figure, value in zip(figures, values):
        written = 100 * float(value) if figure.kind in ("percent", "points") else float(value)
        allowed = tolerance if tolerance is not None else 0.5 * 10 ** (-figure.decimals)
        if abs(written - figure.value) > allowed + 1e-9:
            raise AssertionError(f"the prose says {figure.text!r}, but the committed value reads {written:.4g} "
                                 f"(allowed ± {allowed:g})")
    return True


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _python(code: str) -> ast.Module | None:
    """A code cell as Python, with IPython magics and shell lines blanked; None if it does not parse."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def tied_figures(code: str) -> list[Figure]:
    """The figures that ``assert committed_figure("...", ...)`` statements in ``code`` tie (string literals only)."""
    tree = _python(code)
    found: list[Figure] = []
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Assert):
            continue
        for call in ast.walk(node.test):
            if (isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None))
                    == "committed_figure" and call.args and isinstance(call.args[0], ast.Constant)
                    and isinstance(call.args[0].value, str)):
                found.extend(result_figures(call.args[0].value))
    return found


def _cells(path: str | Path) -> list[dict]:
    return list(json.loads(Path(path).read_text())["cells"])


def untied_figures(path: str | Path) -> list[str]:
    """Every result figure in a notebook's Markdown that breaks the rule, one line each (empty: it follows it)."""
    cells = _cells(path)
    tied = {f.key for c in cells if c["cell_type"] == "code" for f in tied_figures(_source(c))}
    problems = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = _source(cell)
        for figure in result_figures(text):
            if exempt_reason(text, figure):
                continue
            context = text[max(0, figure.start - 40):figure.start + len(figure.text) + 10].replace("\n", " ")
            if figure.key not in tied:
                problems.append(f"cell {i}: {figure.text!r} is not tied to committed records (no assert "
                                f"committed_figure(...) reads {figure.value:g} {figure.kind}): ...{context}...")
            elif not _NAMES_RECORDS.search(text):
                problems.append(f"cell {i}: {figure.text!r} is tied, but the cell does not name the committed "
                                f"records ('committed' or a results/ path): ...{context}...")
    return problems


def markdown_words(path: str | Path) -> int:
    """Words of Markdown in a notebook (every Markdown cell, split on white space)."""
    return sum(len(_source(c).split()) for c in _cells(path) if c["cell_type"] == "markdown")


def claim_asserts(path: str | Path) -> int:
    """``assert`` statements in a notebook's code, not counting the exercise section ("## Your turn" up to the next
    level-2 heading, its reference solution included)."""
    count, in_exercise = 0, False
    for cell in _cells(path):
        text = _source(cell)
        if cell["cell_type"] == "markdown":
            for heading in re.findall(r"^##\s+(.*)$", text, re.M):
                in_exercise = heading.lower().startswith("your turn")
        elif not in_exercise:
            tree = _python(text)
            count += sum(isinstance(n, ast.Assert) for n in ast.walk(tree)) if tree is not None else 0
    return count


def main(argv: list[str] | None = None) -> int:
    """Print each notebook's words, asserts and untied figures; exit 1 when one breaks a limit or the rule."""
    bad = 0
    for name in argv if argv is not None else sys.argv[1:]:
        words, asserts, untied = markdown_words(name), claim_asserts(name), untied_figures(name)
        over = words > MAX_MARKDOWN_WORDS or asserts > MAX_ASSERTS
        print(f"{name}: {words} words of Markdown (max {MAX_MARKDOWN_WORDS}), {asserts} asserts (max {MAX_ASSERTS})"
              + (" OVER" if over else ""))
        for line in untied:
            print(f"  {line}")
        bad += bool(untied) or over
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
