"""Where every study writes: ``<results>/<study>/<profile>/<dataset>/``, and the one-step move from the old layouts.

============  ========================================================================================
study         what its folder holds
============  ========================================================================================
bench         one record per row and seed (``<row>-seed<k>.json``), ``leaderboard.json`` and ``.md``
paper-check   the paper-profile records (``<row>-seed<k>.json``, ``<row>-seed<k>.<device>.json`` kept
              beside a newer run from another device) and the paper table, ``leaderboard.md``
few-labels    one sub-folder per training-set size, ``n<size>/<row>-seed<k>.json``
============  ========================================================================================

``<results>`` is ``$LABKIT_RESULTS`` or ``results/`` in a clone (:func:`labkit.core.paths.results_dir`), or the
``out_dir`` a study is given. Nothing looks at which files exist to decide where to write.

Before this layout the lab had three: the laptop board at ``<results>/leaderboard.{json,md}`` with its runs in
``<results>/<profile>/<dataset>/``, the paper-profile runs in ``<results>/paper/<dataset>/`` with the paper table at
``<results>/paper/leaderboard.md``, and the few-label study in ``<results>/few-labels/n<size>/<profile>/<dataset>/``.
:func:`migrate_results` moves such files into this layout, unchanged (byte for byte); :func:`results_root` runs it
whenever a study reads or writes a results folder that still holds an old path, so old records stay readable.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from labkit.core import paths
from labkit.core.errors import UnknownNameError
from labkit.core.profiles import PROFILES

__all__ = ["BENCH", "FEW_LABELS", "PAPER_CHECK", "PRECISION", "SCALE", "STUDIES", "migrate_results", "old_layout_paths",
           "results_root", "stray_files", "study_dir"]

BENCH = "bench"
PAPER_CHECK = "paper-check"
FEW_LABELS = "few-labels"
PRECISION = "precision"
SCALE = "scale"
#: Every study's folder name under the results folder.
STUDIES: tuple[str, ...] = (BENCH, PAPER_CHECK, FEW_LABELS, PRECISION, SCALE)

_OLD_BOARD = ("leaderboard.json", "leaderboard.md")
_OLD_SIZE_DIR = re.compile(r"n\d+")
_PAPER_TABLE_TITLE = re.compile(r"# Paper profile: (\S+)")


def study_dir(study: str, profile: str, dataset: str, out_dir: str | Path | None = None) -> Path:
    """``<results>/<study>/<profile>/<dataset>/``: the one folder a study writes for a profile and data set."""
    if study not in STUDIES:
        raise UnknownNameError("study", study, STUDIES)
    return results_root(out_dir) / study / profile / dataset


def results_root(out_dir: str | Path | None = None) -> Path:
    """The results folder (``out_dir``, else :func:`labkit.core.paths.results_dir`), with any old layout found there
    moved into the current one first (:func:`migrate_results`)."""
    root = Path(out_dir) if out_dir is not None else paths.results_dir()
    if old_layout_paths(root):
        migrate_results(root)
    return root


def _old_profile_dirs(root: Path) -> list[Path]:
    """``<root>/<profile>/``: the old bench and paper layouts put a profile's folder at the top."""
    return [root / name for name in PROFILES if (root / name).is_dir()]


def _old_size_dirs(root: Path) -> list[Path]:
    """``<root>/few-labels/n<size>/``: the old few-label layout put the size above the profile."""
    base = root / FEW_LABELS
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and _OLD_SIZE_DIR.fullmatch(p.name))


def old_layout_paths(root: str | Path | None = None) -> list[Path]:
    """The old-layout files and folders under ``root`` (default: the results folder); empty when there are none."""
    root = Path(root) if root is not None else paths.results_dir()
    boards = [root / name for name in _OLD_BOARD if (root / name).is_file()]
    return boards + _old_profile_dirs(root) + _old_size_dirs(root)


def stray_files(root: str | Path) -> list[Path]:
    """The files under ``root`` that are not inside a ``<study>/<profile>/<dataset>/`` folder of a known study and
    profile (empty for a results folder in the one layout). It reads only; nothing is moved."""
    root = Path(root)
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = path.relative_to(root).parts
        if len(parts) < 4 or parts[0] not in STUDIES or parts[1] not in PROFILES:
            out.append(path)
    return out


def _move(src: Path, dst: Path, moved: list[tuple[Path, Path]]) -> None:
    """Move one file, never over an existing one (a file already at ``dst`` wins and ``src`` stays where it is)."""
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
    moved.append((src, dst))


def _move_tree(src: Path, dst: Path, moved: list[tuple[Path, Path]]) -> None:
    """Move every file under ``src`` to the same relative path under ``dst``, then drop the emptied folders."""
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        _move(path, dst / path.relative_to(src), moved)
    _drop_empty(src)


def _drop_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders under it that hold no file (a file left over keeps its folders)."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _board_place(path: Path) -> tuple[str, str] | None:
    """(profile, data set) of an old root board, from its JSON; ``None`` when the file does not say."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("profile"), str) and isinstance(doc.get("dataset"), str):
        return doc["profile"], doc["dataset"]
    return None


def _paper_table_dataset(table: Path) -> str | None:
    """The data set an old paper table is about, from its title line (``# Paper profile: fashion-mnist``)."""
    try:
        first = table.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    match = _PAPER_TABLE_TITLE.fullmatch(first.strip())
    return match.group(1) if match else None


def migrate_results(root: str | Path | None = None) -> list[tuple[Path, Path]]:
    """Move every old-layout file under ``root`` (default: the results folder) into the current layout; return the
    (old path, new path) pairs moved. Contents are not touched. Safe to run again: it moves only what is still old.

    * ``leaderboard.{json,md}`` at the top -> ``bench/<profile>/<dataset>/`` (the profile and data set the JSON names);
    * ``<profile>/<dataset>/*`` -> ``bench/<profile>/<dataset>/``, except the ``paper`` profile, whose runs fed the
      paper table: ``paper/<dataset>/*`` -> ``paper-check/paper/<dataset>/`` and ``paper/leaderboard.md`` (the table)
      -> ``paper-check/paper/<dataset>/leaderboard.md``;
    * ``few-labels/n<size>/<profile>/<dataset>/*`` -> ``few-labels/<profile>/<dataset>/n<size>/``.

    A file whose new path is already taken stays where it is (the newer layout wins); so does a root board whose JSON
    does not name its profile and data set, and a paper table whose title does not name its data set.
    """
    root = Path(root) if root is not None else paths.results_dir()
    moved: list[tuple[Path, Path]] = []
    place = _board_place(root / _OLD_BOARD[0]) if (root / _OLD_BOARD[0]).is_file() else None
    if place is not None:
        for name in _OLD_BOARD:
            if (root / name).is_file():
                _move(root / name, root / BENCH / place[0] / place[1] / name, moved)
    for profile_dir in _old_profile_dirs(root):
        study = PAPER_CHECK if profile_dir.name == "paper" else BENCH
        table = profile_dir / "leaderboard.md"
        dataset = _paper_table_dataset(table) if study == PAPER_CHECK and table.is_file() else None
        if dataset is not None:
            _move(table, root / PAPER_CHECK / "paper" / dataset / table.name, moved)
        for dataset_dir in sorted(p for p in profile_dir.iterdir() if p.is_dir()):
            _move_tree(dataset_dir, root / study / profile_dir.name / dataset_dir.name, moved)
        _drop_empty(profile_dir)
    for size_dir in _old_size_dirs(root):
        for profile_dir in sorted(p for p in size_dir.iterdir() if p.is_dir()):
            for dataset_dir in sorted(p for p in profile_dir.iterdir() if p.is_dir()):
                _move_tree(dataset_dir, root / FEW_LABELS / profile_dir.name / dataset_dir.name / size_dir.name,
                           moved)
        _drop_empty(size_dir)
    return moved
