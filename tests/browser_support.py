"""Helpers for the real-browser test: a throwaway JupyterLab server and a headless Chromium page.

The server listens on a free loopback port with a random token, serves a temporary copy of the
notebooks (so the repository's files are never touched), runs its kernels under
``LABKIT_PROFILE=smoke`` and is always shut down (kernels first, then the whole process group).
The page helpers drive JupyterLab the way a learner does: open a notebook, Run ▸ Run All Cells,
move the ``temperature`` slider with the keyboard, and read the plotly data the page shows.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where Debian's ``chromium`` package puts the browser (``apt-get install chromium``).
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))

#: Flags for a sandbox-less, offline, headless Chromium (no background traffic, no first-run UI).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Loopback only: every other request goes to a proxy that is not there (loopback bypasses proxies).
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1;localhost",
]

#: JupyterLab settings for a quiet, deterministic UI: no news/update checks, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                       "autoStartDefaultKernel": True},
}


def browser_skip_reason() -> str | None:
    """Why the browser test cannot run here, or None when Chromium and Playwright are both present."""
    if not CHROMIUM.exists():
        return (f"Chromium not found at {CHROMIUM} (apt-get install chromium, "
                "or set LABKIT_CHROMIUM to a Chromium binary)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab: its base URL, token, served folder and process."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the Jupyter server's REST API (token-authenticated) and decode the JSON answer."""
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"},
                                     data=b"" if method in ("POST", "PUT") else None)
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n_chars: int = 4000) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no server log)"


def _write_lab_settings(settings_dir: Path) -> None:
    for rel, values in LAB_SETTINGS.items():
        plugin_dir, _, file_name = rel.rpartition("/")
        target = settings_dir / plugin_dir
        target.mkdir(parents=True, exist_ok=True)
        (target / file_name).write_text(json.dumps(values))


def _child_pids(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(stat.parent.name))
    return children


def _stop_process_group(server: LabServer, grace_s: float = 10.0) -> None:
    """Shut kernels down through the API, then the server's process group (TERM, then KILL).

    Kernels run in sessions of their own, so any the API did not stop are killed by process id.
    """
    kernel_pids = _child_pids(server.process.pid)
    if server.process.poll() is None:
        try:
            for kernel in server.api("/api/kernels", timeout=5):
                try:
                    server.api(f"/api/kernels/{kernel['id']}", method="DELETE", timeout=15)
                except (OSError, urllib.error.URLError):
                    pass
            server.api("/api/shutdown", method="POST", timeout=5)
        except (OSError, urllib.error.URLError, ValueError):
            pass
    try:
        server.process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                server.process.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
    for pid in kernel_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def jupyter_lab(notebooks: list[Path], workdir: Path, startup_timeout_s: float = 120.0,
                extra_env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """Start JupyterLab on a free loopback port serving copies of ``notebooks``; always stop it.

    The server, its kernels, settings and runtime files all live under ``workdir``; kernels run with
    ``LABKIT_PROFILE=smoke``. Raises RuntimeError (with the server log) if it does not come up.
    """
    root = workdir / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        shutil.copy2(nb, root / nb.name)
    settings_dir = workdir / "lab-settings"
    _write_lab_settings(settings_dir)
    for sub in ("config", "runtime", "workspaces"):
        (workdir / sub).mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    port = free_loopback_port()
    env = dict(os.environ)
    env.update({
        "LABKIT_PROFILE": "smoke",
        "MPLBACKEND": "Agg",
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("JUPYTER_TOKEN", None)
    env.update(extra_env or {})
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings_dir}", f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    log_path = workdir / "jupyterlab.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed in finally)
    process = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root_dir=root,
                       process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status", timeout=3)
                break
            except (OSError, urllib.error.URLError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within {startup_timeout_s:.0f} s:\n"
                                       f"{server.log_tail()}") from None
                time.sleep(0.5)
        yield server
    finally:
        try:
            _stop_process_group(server)
        finally:
            log.close()


@contextmanager
def headless_chromium(user_data_dir: Path) -> Iterator[Any]:
    """A headless Debian Chromium (Playwright ``BrowserContext``) with a fresh profile; it reaches only loopback."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000}, service_workers="block")
        try:
            yield context
        finally:
            context.close()


# --------------------------------------------------------------------------- page helpers
# JupyterLab keeps every open notebook in the DOM; the one on screen is the notebook panel that is not
# hidden (Lumino hides the others with a class or with aria-hidden, depending on its hidden mode).

#: CSS selector of the notebook panel on screen.
ACTIVE_PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden):not([aria-hidden="true"])'

#: JavaScript: the notebook panel on screen (or null).
_PANEL_JS = f"document.querySelector('{ACTIVE_PANEL}')"

#: Reads every plotly graph inside ``root``: per trace its type, name and y values (plain lists).
PLOTLY_DATA_JS = """(root) => Array.from(root.querySelectorAll('.js-plotly-plot')).map(gd => {
  const traces = (gd._fullData && gd._fullData.length ? gd._fullData : (gd.data || []));
  const plain = v => (v == null ? null : Array.from(v, x => (typeof x === 'number' ? Math.round(x * 1e6) / 1e6 : x)));
  return traces.map(t => ({type: t.type, name: t.name || '', y: plain(t.y)}));
})"""

#: The on-screen notebook's kernel as its toolbar shows it, and whether a dialog is open.
KERNEL_STATE_JS = """() => {
  const panel = %s;
  const name = panel && panel.querySelector('.jp-Toolbar-kernelName');
  const ind = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {name: name ? name.textContent.trim() : '',
          status: ind ? (ind.getAttribute('data-status') || '') : '',
          dialog: !!document.querySelector('.jp-Dialog')};
}""" % _PANEL_JS

#: True once the kernel is idle and every code cell has run, or a cell failed (Run All stops there).
ALL_EXECUTED_JS = """() => {
  const panel = %s;
  if (!panel) return false;
  const ind = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
  const prompts = Array.from(panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'));
  if (prompts.some(p => p.textContent.includes('*'))) return false;
  const failed = Array.from(panel.querySelectorAll('.jp-OutputArea-output'))
    .some(o => /Traceback \\(most recent call last\\)/.test(o.innerText || ''));
  return failed || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
}""" % _PANEL_JS

#: Texts of the outputs in the on-screen notebook that show a Python error.
CELL_ERRORS_JS = """() => { const panel = %s; return !panel ? [] :
  Array.from(panel.querySelectorAll('.jp-OutputArea-output'))
  .map(o => o.innerText || '')
  .filter(t => /Traceback \\(most recent call last\\)/.test(t))
  .map(t => t.slice(-2000)); }""" % _PANEL_JS


def open_lab(page: Any, server: LabServer, timeout_ms: float = 180_000) -> None:
    """Load the JupyterLab app (token in the URL) and wait for its file browser."""
    page.goto(f"{server.url}/lab?token={server.token}&reset", wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_selector(".jp-DirListing-item", timeout=timeout_ms)


def kernel_state(page: Any) -> dict:
    """The on-screen notebook's kernel: ``{'name', 'status', 'dialog'}`` as the toolbar shows them."""
    return page.evaluate(KERNEL_STATE_JS)


def open_notebook(page: Any, name: str, timeout_ms: float = 180_000) -> None:
    """Open notebook ``name`` from the file browser (double click) and wait for an idle kernel.

    If JupyterLab asks which kernel to start, the learner's answer is the default: "Select".
    """
    page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=name)).first.dblclick()
    page.wait_for_function(
        """(name) => { const p = %s; const tab = document.querySelector(
             '#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel');
           return p && p.querySelector('.jp-Cell') && tab && tab.textContent.trim() === name; }""" % _PANEL_JS,
        arg=name, timeout=timeout_ms, polling=250)
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        state = kernel_state(page)
        if state["dialog"]:
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        elif state["name"] and state["name"] != "No Kernel" and state["status"] == "idle":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel of {name} not ready after {timeout_ms / 1000:.0f} s: {state}")
        page.wait_for_timeout(250)


def wait_kernel_idle(page: Any, timeout_ms: float) -> None:
    """Wait until the on-screen notebook's kernel reports idle."""
    page.wait_for_function("""() => { const p = %s;
      const ind = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
      return !!ind && ind.getAttribute('data-status') === 'idle'; }""" % _PANEL_JS,
                           timeout=timeout_ms, polling=250)


def run_all_cells(page: Any) -> None:
    """Run ▸ Run All Cells, through the menu bar as a learner would."""
    page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def wait_all_cells_executed(page: Any, timeout_ms: float) -> None:
    """Wait until the kernel is idle and every code cell shows an execution count (or one failed)."""
    page.wait_for_function(ALL_EXECUTED_JS, timeout=timeout_ms, polling=500)


def cell_errors(page: Any) -> list[str]:
    """Texts of the error outputs (Python tracebacks) in the on-screen notebook."""
    return page.evaluate(CELL_ERRORS_JS)


def labelled_sliders(page: Any, description: str = "temperature") -> list[Any]:
    """The on-screen notebook's ipywidgets sliders whose description reads exactly ``description``."""
    sliders = page.locator(f"{ACTIVE_PANEL} .widget-slider").filter(
        has=page.locator(".widget-label", has_text=description))
    return [sliders.nth(i) for i in range(sliders.count())
            if sliders.nth(i).locator(".widget-label").first.inner_text().strip() == description]


def slider_readout(slider: Any) -> str:
    """The slider's displayed value."""
    return slider.locator(".widget-readout").first.inner_text().strip()


def slider_range(slider: Any) -> tuple[float, float, float]:
    """``(minimum, maximum, value)`` of a slider, from its handle's ARIA attributes."""
    handle = slider.locator(".noUi-handle").first
    return tuple(float(handle.get_attribute(f"aria-value{which}")) for which in ("min", "max", "now"))


def move_slider(slider: Any, keys: list[str]) -> None:
    """Move an ipywidgets slider with the keyboard: focus its handle and press ``keys`` in turn.

    The handle (noUiSlider) understands the arrow keys (one step), PageUp/PageDown, Home (minimum) and End (maximum).
    """
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for key in keys:
        handle.press(key)


def cell_of(element: Any) -> Any:
    """The notebook cell (input and outputs) that holds ``element``."""
    return element.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '),"
                           " ' jp-Cell ')][1]")


def plotly_data(area: Any) -> list[list[dict]]:
    """Per plotly graph inside ``area``: its traces' type, name and y values, as drawn in the page."""
    return area.evaluate(PLOTLY_DATA_JS)
