"""The lab's card holds: its six top-level entries exist, the README's Layout section names only paths that exist
and every top-level entry and layer of the tree, and DEVELOPING.md's module table matches the package."""
from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The design card's top level: the folders and files a learner is promised.
CARD = ("data/", "environment.yml", "notebooks/", "labkit/", "tests/", "README.md")
PATH_TOKEN = re.compile(r"(?<![\w/.-])[\w.-]*(?:/[\w.-]*)+|(?<![\w/.-])[\w.-]+\.(?:py|md|toml|yml|json)\b")


def layout_block(readme: str) -> str:
    """The code block of the README's ``## Layout`` section."""
    section = readme.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```[^\n]*\n(.*?)\n```", section, re.S)
    assert match, "the README's Layout section has no code block"
    return match.group(1)


def layout_entries(block: str) -> list[tuple[str, list[str]]]:
    """``(path, paths named in its description)`` per line; an entry indented by two more spaces than the one above
    it lies inside that one."""
    entries: list[tuple[str, list[str]]] = []
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name, _, description = line.strip().partition(" ")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] if stack else "") + name
        stack.append((indent, path))
        entries.append((path, PATH_TOKEN.findall(description)))
    return entries


def layout_problems(readme: str, root: Path) -> list[str]:
    """Paths the Layout section names that do not exist (a description's paths may be relative to its entry)."""
    problems = []
    for path, named in layout_entries(layout_block(readme)):
        if not (root / path).exists():
            problems.append(f"{path} does not exist")
        for token in named:
            if not ((root / path / token).exists() or (root / token).exists()):
                problems.append(f"{token} (named beside {path}) does not exist")
    return problems


def test_card_entries_exist():
    for entry in CARD:
        path = ROOT / entry
        assert (path.is_dir() if entry.endswith("/") else path.is_file()), f"{entry} is missing from the top level"


def test_data_folder_is_tracked():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "data"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "data/README.md" in tracked.stdout.split()


def test_readme_layout_names_only_existing_paths():
    problems = layout_problems((ROOT / "README.md").read_text(), ROOT)
    assert not problems, "the README's Layout section is out of step with the tree:\n" + "\n".join(problems)


def test_readme_layout_names_every_top_level_entry_and_layer():
    named = {path for path, _ in layout_entries(layout_block((ROOT / "README.md").read_text()))}
    layers = {f"labkit/{p.parent.name}/" for p in (ROOT / "labkit").glob("*/__init__.py")}
    assert layers and layers <= named, f"layers missing from the Layout section: {sorted(layers - named)}"
    if (ROOT / ".git").exists():
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        top = {f.split("/")[0] + ("/" if "/" in f else "") for f in out.split()}
        top = {t for t in top if not t.startswith(".")}
        assert top <= named, f"tracked top-level entries missing from the Layout section: {sorted(top - named)}"


def test_control_layout_reports_a_made_up_path(tmp_path):
    """Control: a made-up entry and a made-up path in a description are reported; real ones are not."""
    (tmp_path / "labkit" / "core").mkdir(parents=True)
    readme = ("# Lab\n\n## Layout\n\n```\nlabkit/    the package\n  core/    foundations\n  nowhere/ made up\n"
              "ghost.md   made up too, beside labkit/core/ and labkit/missing.py\n```\n\n## Next\n")
    problems = layout_problems(readme, tmp_path)
    assert problems == ["labkit/nowhere/ does not exist", "ghost.md does not exist",
                        "labkit/missing.py (named beside ghost.md) does not exist"], problems


def _module_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("module_table", ROOT / "docs" / "module_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_table_is_current():
    table = _module_table()
    text = (ROOT / "DEVELOPING.md").read_text()
    assert table.with_table(text, table.module_table()) == text, \
        "DEVELOPING.md's module table is out of date: run `make docs`"
    assert table.main(["--check"]) == 0


def test_control_module_table_notices_a_new_module(tmp_path):
    """Control: a module added to the package (or a changed docstring) makes the stored table stale."""
    table = _module_table()
    package = tmp_path / "labkit"
    (package / "core").mkdir(parents=True)
    (package / "core" / "data.py").write_text('"""Data sets as tensors. More detail here."""\n')
    stored = table.with_table(f"# Dev\n\n{table.BEGIN}\n{table.END}\n\nafter\n", table.module_table(package))
    assert "| `core/data.py` | Data sets as tensors. |" in stored and stored.endswith("\n\nafter\n")
    (package / "core" / "new.py").write_text('"""A new module (Hinton et al. 2015), e.g. here. Second."""\n')
    assert table.with_table(stored, table.module_table(package)) != stored
    assert "| `core/new.py` | A new module (Hinton et al. 2015), e.g. here. |" in table.module_table(package)
