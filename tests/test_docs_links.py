"""Every link to a page of the lab resolves: relative Markdown links and ``docs/...`` (and ``labkit/...``) paths in the
code, the README, DEVELOPING.md, ``docs/`` and the notebooks point to files that exist, and a ``#anchor`` to a heading
of that page."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``[text](target)``: the target up to the closing bracket or a space (a title may follow).
MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: a ``docs/...`` or ``labkit/...`` path anywhere in the text (backticked, in a docstring or in prose), not part of a
#: longer path such as ``~/.cache/labkit/data``.
DOCS_PATH = re.compile(r"(?<![\w/.~-])(?:docs|labkit)/[\w./#-]*")
FENCE = re.compile(r"^(```|~~~)")


def sources(root: Path = ROOT) -> list[Path]:
    """The files whose links are checked."""
    files = [*sorted((root / "labkit").rglob("*.py")), root / "README.md", root / "DEVELOPING.md",
             *sorted((root / "docs").rglob("*.md")), *sorted((root / "docs").rglob("*.py")),
             *sorted((root / "notebooks").glob("*.ipynb"))]
    return [f for f in files if f.is_file()]


def text_of(path: Path) -> str:
    """A file's text; a notebook's is its cells' sources."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)
    return path.read_text()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings (outside code fences), with GitHub's ``-1``, ``-2`` suffixes."""
    found: set[str] = set()
    in_fence = False
    for line in page.read_text().splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
        elif not in_fence and re.match(r"#{1,6} ", line):
            base = slug(line.lstrip("#"))
            name, k = base, 0
            while name in found:
                k += 1
                name = f"{base}-{k}"
            found.add(name)
    return found


def _problem(source: Path, link: str, target: Path, anchor: str, root: Path) -> str | None:
    where = source.relative_to(root) if source.is_relative_to(root) else source
    if not target.exists():
        return f"{where}: {link} -> {target} does not exist"
    if anchor and target.is_file() and target.suffix == ".md" and anchor not in anchors(target):
        return f"{where}: {link} -> no heading #{anchor} in {target.name}"
    return None


def broken_links(source: Path, text: str, root: Path = ROOT) -> list[str]:
    """Every link in ``text`` (read from ``source``) that does not resolve, one line each.

    Markdown links (not looked for in Python files) resolve against the source's folder, ``docs/...`` and
    ``labkit/...`` paths against the repository root; web addresses and ``mailto:`` are not checked."""
    problems = []
    for match in MARKDOWN_LINK.finditer(text) if source.suffix != ".py" else ():
        link = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (source.parent / path).resolve() if path else source
        problems.append(_problem(source, link, target, anchor, root))
    for match in DOCS_PATH.finditer(text):
        link = match.group(0).rstrip(".,:;")
        path, _, anchor = link.partition("#")
        problems.append(_problem(source, link, (root / path).resolve(), anchor, root))
    return list(dict.fromkeys(p for p in problems if p is not None))  # a Markdown link to docs/ is seen twice


def test_every_link_resolves():
    files = sources()
    assert len(files) > 50 and any(f.suffix == ".ipynb" for f in files)
    problems = [p for f in files for p in broken_links(f, text_of(f))]
    assert not problems, "links that do not resolve:\n" + "\n".join(problems)


def test_links_are_found_in_every_kind_of_source():
    """The scan sees what it should: the README's links, the methods' docs paths and the notebooks' links."""
    readme = MARKDOWN_LINK.findall(text_of(ROOT / "README.md"))
    assert "docs/selection.md" in readme
    code = [m.group(0) for f in (ROOT / "labkit" / "methods").glob("*.py") for m in DOCS_PATH.finditer(f.read_text())]
    assert any(c.startswith("docs/methods/") for c in code)
    notebooks = [m for f in (ROOT / "notebooks").glob("*.ipynb") for m in DOCS_PATH.findall(text_of(f))]
    assert notebooks


def test_control_broken_links_are_reported(tmp_path):
    """Control: a made-up page, a made-up docs path and a made-up heading are each reported; good ones are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Its first section\n\n```\n# not a heading\n```\n")
    source = tmp_path / "README.md"
    text = ("See [the page](docs/page.md), [its section](docs/page.md#its-first-section), `docs/page.md` and\n"
            "~/.cache/labkit/data. Broken: [a page](docs/no_such_page.md), `docs/nowhere.md`,\n"
            "docs/page.md#no-such-heading, [a fenced comment](docs/page.md#not-a-heading), a moved module\n"
            "`labkit/old_module.py`, and [a web page](https://example.org/x), which is not checked.\n")
    source.write_text(text)
    problems = broken_links(source, text, root=tmp_path)
    assert len(problems) == 5 and any("labkit/old_module.py" in p for p in problems), problems
    assert any("no_such_page.md" in p for p in problems) and any("nowhere.md" in p for p in problems)
    assert any("#no-such-heading" in p for p in problems) and any("#not-a-heading" in p for p in problems)


def test_slug_follows_github():
    assert slug("## The ladder (laptop profile, Fashion-MNIST, seeds 0–2)".lstrip("#")) == \
        "the-ladder-laptop-profile-fashion-mnist-seeds-02"
    assert slug(" Writing a `Synthesizer`") == "writing-a-synthesizer"
