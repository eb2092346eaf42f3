"""The lab as a learner uses it: JupyterLab in headless Chromium, Run All, move the temperature slider.

nbval only proves that the cells run; it never shows that a widget renders in a browser, or that moving
it redraws the plot. Here a real JupyterLab (loopback port, token, ``LABKIT_PROFILE=smoke``, serving a
temporary copy of the notebooks) is driven through Playwright with Debian's Chromium:

1. open the notebook and use Run ▸ Run All Cells, wait for the kernel to go idle, fail on any traceback;
2. find the ipywidgets slider labelled ``temperature`` and move it with the keyboard (Home/End on its handle);
3. read the plotly bar data the page draws in that dashboard, before and after, and require a change
   (and, for soft labels, that a higher temperature does not sharpen them);
4. save before/after screenshots under ``artifacts/browser/`` (git-ignored).

A control notebook with two identical dashboards, one with its ``observe`` callback removed, shows that the
check catches a slider whose callback is broken. ``LABKIT_BROWSER_NOTEBOOKS=/some/dir`` points the test at
other copies of the notebooks (used once to break notebook 01's callback by hand).

Skipped, with the reason, where Chromium (``/usr/bin/chromium``) or Playwright is missing.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labkit.paths import REPO_ROOT, artifacts_dir
from tests import browser_support as bs

SKIP_REASON = bs.browser_skip_reason()
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

NOTEBOOK_DIR = Path(os.environ.get("LABKIT_BROWSER_NOTEBOOKS", REPO_ROOT / "notebooks"))
LAB_NOTEBOOKS = ["01_kd_fundamentals.ipynb", "02_decision_boundaries.ipynb"]
CONTROL_NOTEBOOK = "browser_control.ipynb"

RUN_ALL_TIMEOUT_MS = 420_000   # smoke: ~1 min per notebook alone; 4 min seen on a 2-core CPU shared 8 ways
REDRAW_TIMEOUT_S = 60.0        # slider -> kernel callback -> comm message -> plotly redraw
CONTROL_REDRAW_TIMEOUT_S = 15.0  # the control's callback is instant; a broken one is waited on this long
DRAW_TIMEOUT_S = 20.0          # traces follow the first (empty) draw within seconds; a plot still empty then stays so


def _control_notebook(path: Path) -> None:
    """Two identical temperature dashboards (slider + FigureWidget of soft-label bars); the first is broken."""
    setup = (
        "import numpy as np, ipywidgets as widgets, plotly.graph_objects as go\n"
        "LOGITS = np.array([[4.0, 1.5, 0.5, -1.0, -2.0], [0.5, 3.0, 2.5, 0.0, -1.0]])\n\n"
        "def soft_labels(tau):\n"
        "    z = np.exp((LOGITS - LOGITS.max(1, keepdims=True)) / tau)\n"
        "    return z / z.sum(1, keepdims=True)\n\n"
        "def dashboard(connect_callback):\n"
        "    fig = go.FigureWidget([go.Bar(y=p) for p in soft_labels(4.0)])\n"
        "    slider = widgets.FloatSlider(value=4.0, min=0.5, max=20.0, step=0.5, description='temperature')\n"
        "    def redraw(change):\n"
        "        with fig.batch_update():\n"
        "            for trace, p in zip(fig.data, soft_labels(change['new'])):\n"
        "                trace.y = p\n"
        "    if connect_callback:\n"
        "        slider.observe(redraw, names='value')\n"
        "    return widgets.VBox([slider, fig])"
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Browser-test control: a broken and a working temperature slider"),
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_code_cell("dashboard(connect_callback=False)  # the observe callback is missing"),
        nbformat.v4.new_code_cell("dashboard(connect_callback=True)"),
    ]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab serving copies of notebooks 01, 02 and the control notebook; always shut down."""
    work = tmp_path_factory.mktemp("jupyterlab")
    sources = [NOTEBOOK_DIR / name for name in LAB_NOTEBOOKS if (NOTEBOOK_DIR / name).exists()]
    control = work / CONTROL_NOTEBOOK
    _control_notebook(control)
    with bs.jupyter_lab(sources + [control], work) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless Chromium with a fresh profile; only loopback requests are let through."""
    with bs.headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def page(browser: Any, lab: bs.LabServer):
    """One browser tab with JupyterLab loaded; each test opens its notebook from the file browser."""
    tab = browser.new_page()
    tab.set_default_timeout(60_000)
    console: list[str] = []
    tab.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    tab.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
    bs.open_lab(tab, lab)
    yield tab
    (_shots_dir() / "console.log").write_text("\n".join(console) + "\n")
    tab.close()


def _shots_dir() -> Path:
    """``artifacts/browser/`` (git-ignored), created on first use."""
    out = artifacts_dir() / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _bar_values(graphs: list[list[dict]]) -> list[list[float]]:
    """The y values of every bar trace, graph by graph."""
    return [trace["y"] for graph in graphs for trace in graph if trace["type"] == "bar" and trace["y"]]


def _wait_for_bars(area: Any, timeout_s: float, differ_from: list[list[float]] | None = None) -> list[list[float]]:
    """Poll the page's plotly data until bars are drawn (and differ from ``differ_from``), or time is up.

    A FigureWidget first appears as an empty plot and receives its traces a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        now = _bar_values(bs.plotly_data(area))
        if (now and now != differ_from) or time.monotonic() > deadline:
            return now
        area.page.wait_for_timeout(250)


def _wait_for_readout_change(slider: Any, before: str, timeout_s: float) -> str:
    """The slider's readout once it differs from ``before`` (or as it is when the time is up)."""
    deadline = time.monotonic() + timeout_s
    while (now := bs.slider_readout(slider)) == before and time.monotonic() < deadline:
        slider.page.wait_for_timeout(100)
    return now


def _rerun_empty_dashboard(area: Any, stem: str) -> list[list[float]]:
    """The dashboard's FigureWidget was drawn empty: record it, re-run that one cell (Shift+Enter), read again.

    Seen a few times on a heavily loaded 2-core machine: the figure widget of a dashboard that later cells
    update straight away renders as an empty default plot (no traces, no title) and stays so. A learner would
    re-run the cell; the test does the same once, and warns, so the slider's callback is still tested.
    """
    shot = _shots_dir() / f"{stem}-empty-plot.png"
    area.screenshot(path=str(shot))
    warnings.warn(f"{stem}: the dashboard's plotly FigureWidget rendered empty after Run All; re-running its "
                  f"cell once (screenshot {shot}; browser console in {_shots_dir() / 'console.log'})",
                  RuntimeWarning, stacklevel=2)
    prompt = area.locator(".jp-InputArea-prompt").first
    count_before = prompt.inner_text().strip()
    prompt.click()
    area.page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:  # wait for a new execution count: the cell ran again
        now = prompt.inner_text().strip()
        if now != count_before and "*" not in now and any(ch.isdigit() for ch in now):
            break
        area.page.wait_for_timeout(500)
    bs.wait_kernel_idle(area.page, 120_000)
    return _wait_for_bars(area, DRAW_TIMEOUT_S)


def _move_temperature(slider: Any, area: Any, timeout_s: float, stem: str) -> dict:
    """Jump the slider to its farther end (Home = minimum, End = maximum); the bars before and after.

    The farther end gives the biggest change, so the before/after screenshots show it plainly. Saves
    ``<stem>-before.png`` once the bars are drawn.
    """
    area.scroll_into_view_if_needed()
    bars_before = _wait_for_bars(area, DRAW_TIMEOUT_S)
    if not bars_before:
        bars_before = _rerun_empty_dashboard(area, stem)
    assert bars_before, "the temperature dashboard shows no plotly bar chart in the page"
    area.screenshot(path=str(_shots_dir() / f"{stem}-before.png"))
    readout_before = bs.slider_readout(slider)
    low, high, now = bs.slider_range(slider)
    key = "Home" if now - low > high - now else "End"
    bs.move_slider(slider, [key])
    readout_after = _wait_for_readout_change(slider, readout_before, 5.0)
    bars_after = _wait_for_bars(area, timeout_s, differ_from=bars_before)
    return {"key": key, "readout_before": readout_before, "readout_after": readout_after,
            "bars_before": bars_before, "bars_after": bars_after}


def _run_all(page: Any, name: str) -> None:
    """Open ``name`` from the file browser, Run ▸ Run All Cells, wait for the end; fail on any traceback."""
    started = time.monotonic()
    bs.open_notebook(page, name)
    opened = time.monotonic()
    bs.run_all_cells(page)
    bs.wait_all_cells_executed(page, RUN_ALL_TIMEOUT_MS)
    print(f"\n{name}: opened with an idle kernel in {opened - started:.0f} s, Run All took "
          f"{time.monotonic() - opened:.0f} s")
    errors = bs.cell_errors(page)
    assert not errors, f"{name}: a cell failed when run in JupyterLab:\n" + "\n---\n".join(errors)


def _shut_down_kernels(lab: bs.LabServer) -> None:
    """Free the CPU for the next notebook (the server stays up)."""
    for kernel in lab.api("/api/kernels"):
        lab.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=30)


def _assert_redrawn(name: str, moved: dict) -> None:
    """The check itself: the slider moved, the bars changed, and hotter soft labels are not sharper."""
    assert moved["readout_after"] != moved["readout_before"], f"the slider did not move: {moved['readout_before']}"
    assert moved["bars_after"] != moved["bars_before"], (
        f"{name}: moving 'temperature' from {moved['readout_before']} to {moved['readout_after']} did not "
        f"change the soft-label bars in the page (is the slider's observe callback connected?). "
        f"Screenshots: {_shots_dir()}")
    hotter = float(moved["readout_after"]) > float(moved["readout_before"])
    for before, after in zip(moved["bars_before"], moved["bars_after"]):
        if abs(sum(before) - 1) < 1e-3 and abs(sum(after) - 1) < 1e-3:  # a probability vector
            sharper, flatter = (before, after) if hotter else (after, before)
            assert max(flatter) <= max(sharper) + 1e-6, "a higher temperature must not sharpen the soft labels"


def _failure_screenshot(page: Any, stem: str) -> None:
    try:
        page.screenshot(path=str(_shots_dir() / f"{stem}-failure.png"), full_page=True)
    except Exception:  # noqa: BLE001 - best effort, never hides the real failure
        pass


def test_broken_slider_callback_is_caught(page: Any, lab: bs.LabServer) -> None:
    """Negative control: the same check fails when the observe callback is missing, passes when present."""
    try:
        _run_all(page, CONTROL_NOTEBOOK)
        sliders = bs.temperature_sliders(page)
        assert len(sliders) == 2, "the control notebook should show two temperature sliders"
        outcome = {}
        for label, slider in zip(("broken", "working"), sliders):
            area = bs.cell_of(slider)
            outcome[label] = _move_temperature(slider, area, CONTROL_REDRAW_TIMEOUT_S, f"control-{label}")
            area.screenshot(path=str(_shots_dir() / f"control-{label}-after.png"))
        (_shots_dir() / "control.json").write_text(json.dumps(outcome, indent=1))
        with pytest.raises(AssertionError, match="did not change the soft-label bars"):
            _assert_redrawn("control (broken)", outcome["broken"])
        _assert_redrawn("control (working)", outcome["working"])
    except BaseException:
        _failure_screenshot(page, "control")
        raise
    finally:
        _shut_down_kernels(lab)


@pytest.mark.parametrize("name", LAB_NOTEBOOKS)
def test_temperature_slider_redraws_soft_labels(page: Any, lab: bs.LabServer, name: str) -> None:
    """Run All in JupyterLab, move the temperature slider: the soft-label bars in the page must change."""
    if not (NOTEBOOK_DIR / name).exists():
        pytest.fail(f"{NOTEBOOK_DIR / name} does not exist: the browser test needs it")
    stem = Path(name).stem
    started = time.monotonic()
    try:
        _run_all(page, name)
        sliders = bs.temperature_sliders(page)
        if not sliders:
            pytest.fail(f"{name}: no ipywidgets slider labelled 'temperature' rendered in the page")
        slider = sliders[0]
        area = bs.cell_of(slider)
        moved = _move_temperature(slider, area, REDRAW_TIMEOUT_S, stem)
        bs.wait_kernel_idle(page, 60_000)
        moved["bars_after"] = _bar_values(bs.plotly_data(area))  # the final redraw, once the kernel is idle
        area.screenshot(path=str(_shots_dir() / f"{stem}-after.png"))
        _assert_redrawn(name, moved)
    except BaseException:
        _failure_screenshot(page, stem)
        raise
    finally:
        _shut_down_kernels(lab)
    change = max(abs(a - b) for old, new in zip(moved["bars_before"], moved["bars_after"]) for a, b in zip(old, new))
    print(f"{name}: temperature {moved['readout_before']} -> {moved['readout_after']} ({moved['key']} key), "
          f"largest bar change {change:.3f}; whole check {time.monotonic() - started:.0f} s")
