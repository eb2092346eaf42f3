"""The one notebook test tier: ``pytest --nbval-lax notebooks`` (``make test-notebooks``) with two more checks.

nbval runs each notebook's code cells in order in one kernel and fails on an error. This file makes it also check
what a learner meets in JupyterLab:

* **re-run**: every code cell runs twice in a row (a learner re-runs cells); the second run must not fail either
  (``LABKIT_NBVAL_RUNS=1``: once, for timing a learner's first pass);
* **figure hygiene**: the kernel uses JupyterLab's inline backend, and no run of a cell may show the same image twice
  (a plot function that returns its figure without closing it draws it a second time).

Notebook 08's smoke bench spends its whole time budget each time its cell runs, so its parameters cell gets a
shorter budget here (``OVERRIDES``; the first bench row always completes). ``tests/test_notebook_runner.py`` runs
this file over small notebooks as its control: a cell that fails only when re-run, and an unclosed returned figure.
"""
from __future__ import annotations

import os
from typing import Any

import nbformat
import pytest

#: JupyterLab's matplotlib backend: an unclosed figure that a cell returns is drawn twice under it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

#: Lines appended to a notebook's parameters cell (tagged ``parameters``) for this runner, by notebook file name.
OVERRIDES = {"08_leaderboard.ipynb": "MAX_BENCH_SECONDS = 5"}

#: notebooks by their time in this runner (smoke, both passes; 2026-12-06, 2 cores), longest first: with
#: ``--dist loadfile --no-loadscope-reorder`` (the Makefile) two workers take them in this order and finish together
LONGEST_FIRST = ("03_db3kd", "05_pseudo_samples", "04_data_impressions", "07_generative_alignment",
                 "09_after_the_seed_papers", "06_few_shot_black_box", "01_kd_fundamentals", "08_leaderboard",
                 "00_orientation", "02_decision_boundaries")

#: ``LABKIT_NBVAL_RUNS=1`` runs every cell once, as a learner's first pass does (the course timing in docs/speed.md)
RUNS = ("first", "second")[: 1 if os.environ.get("LABKIT_NBVAL_RUNS") == "1" else 2]

os.environ["MPLBACKEND"] = INLINE_BACKEND  # the kernels nbval starts inherit it
#: under pytest-xdist (``make test`` runs the notebooks on two workers) each kernel gets its share of the cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))


def _images(outputs: list[Any]) -> list[str]:
    """The PNG images among a cell's outputs."""
    return [str(out["data"]["image/png"]) for out in outputs or []
            if "data" in out and "image/png" in out["data"]]


def _run_twice(item: Any) -> None:
    """Run the cell as nbval does, twice; fail on an error in either run or on an image shown twice in one run."""
    from nbval.plugin import IPyNbCell, NbCellError

    for attempt in RUNS:
        try:
            IPyNbCell.runtest(item)
        except NbCellError as exc:
            raise NbCellError(exc.cell_num, f"{attempt} run: {exc}", exc.source, exc.inner_traceback) from exc
        images = _images(item.test_outputs)
        if len(images) != len(set(images)):
            item.raise_cell_error(f"{attempt} run: the same figure is shown twice (is a returned figure not "
                                  "closed? see labkit.teaching.plots)")


def _with_override(cell: Any, line: str) -> Any:
    """A copy of the parameters cell with ``line`` appended."""
    changed = nbformat.from_dict(dict(cell))
    changed.source = cell.source + "\n" + line + "  # set by notebooks/conftest.py"
    return changed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every nbval cell runs twice; the parameters cells named in ``OVERRIDES`` get their extra line; the longest
    notebooks come first (a stable sort: each notebook's cells keep their order)."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    rank = {f"{stem}.ipynb": i for i, stem in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    overridden: list[str] = []
    for item in items:
        if not isinstance(item, IPyNbCell):
            continue
        override = OVERRIDES.get(item.path.name)
        if override and "parameters" in item.cell.metadata.get("tags", []):
            item.cell = _with_override(item.cell, override)
            overridden.append(item.path.name)
        item.runtest = _run_twice.__get__(item)  # type: ignore[method-assign]
    collected = {item.path.name for item in items if isinstance(item, IPyNbCell)}
    for name in sorted(set(OVERRIDES) & collected):
        if overridden.count(name) != 1:
            raise pytest.UsageError(f"{name}: one parameters cell expected for the override {OVERRIDES[name]!r}")
