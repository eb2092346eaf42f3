"""`make lab` serves JupyterLab for root and for a normal user.

The server tests take the command from the Makefile's `lab` recipe (``$(BIN)/python -m labkit lab``, with this
interpreter for ``$(BIN)/python``), start it on a free loopback port with a known token, wait until ``GET /lab``
answers 200, and stop it. The control: the same server started as root without ``--allow-root`` must refuse."""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labkit.studies.cli import lab_command

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 60.0
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _make_lab_recipe() -> list[str]:
    """The last line of the Makefile's `lab` recipe (the server), as arguments, with this interpreter."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("lab:")))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    assert recipe[0] == "-$(BIN)/python -m labkit data fetch fashion-mnist", recipe
    return [sys.executable if word == "$(BIN)/python" else word for word in shlex.split(recipe[-1])]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(home: Path) -> dict[str, str]:
    """A clean home and Jupyter folders under ``home``, and no display (so no browser opens during a test)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"))
    return env


def _serve(prefix: list[str], home: Path) -> tuple[int, str]:
    """Start ``prefix + make lab's command`` on a free loopback port; return (HTTP status of /lab, server output).
    The server is stopped (terminate, then kill) before this returns."""
    port, token = _free_port(), secrets.token_hex(16)
    cmd = prefix + _make_lab_recipe() + ["--ip", "127.0.0.1", "--port", str(port), "--token", token]
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_environment(home), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        status = 0
        try:
            deadline = time.monotonic() + STARTUP_S
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as reply:
                        status = reply.status
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.25)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
    return status, log.read_text()


def _non_root_prefix(home: Path) -> tuple[list[str], str]:
    """A command prefix that runs as a non-root user, and how; or ([], why none can be made here)."""
    if not IS_ROOT:
        return [], "already a normal user"
    # what `python -m labkit lab` does: start this interpreter, which execs itself again (as JupyterLab)
    probe = [sys.executable, "-c", "import os, sys; "
             "os.execv(sys.executable, [sys.executable, '-c', 'import os; assert os.geteuid() != 0'])"]
    tried = []
    if shutil.which("setpriv"):
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        os.chown(home, 65534, 65534)
        run = subprocess.run(nobody + probe, cwd=ROOT, env=_environment(home), capture_output=True, text=True)
        if run.returncode == 0:
            return nobody, "user nobody (setpriv)"
        tried.append(f"setpriv to nobody: {(run.stderr.strip().splitlines() or ['failed'])[-1]}")
        os.chown(home, 0, 0)
    if shutil.which("unshare"):
        userns = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
        run = subprocess.run(userns + probe, cwd=ROOT, env=_environment(home), capture_output=True, text=True)
        if run.returncode == 0:
            return userns, "user id 1000 in a user namespace (unshare)"
        tried.append(f"unshare --user: {(run.stderr.strip().splitlines() or ['failed'])[-1]}")
    return [], "no non-root user can run this interpreter here: " + "; ".join(tried or ["no setpriv or unshare"])


@pytest.mark.parametrize("uid,display,allow_root,no_browser", [(0, False, True, True), (0, True, True, False),
                                                                (1000, False, False, True), (1000, True, False, False)])
def test_the_lab_command_fits_the_user_and_the_display(uid: int, display: bool, allow_root: bool,
                                                       no_browser: bool) -> None:
    cmd = lab_command(uid=uid, has_display=display, extra=["--port=9"])
    assert cmd[:4] == [sys.executable, "-m", "jupyterlab", "--notebook-dir=notebooks"] and cmd[-1] == "--port=9"
    assert ("--allow-root" in cmd) is allow_root and ("--no-browser" in cmd) is no_browser


def test_the_display_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    headless = "--no-browser" in lab_command(uid=1000)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert "--no-browser" not in lab_command(uid=1000)
    assert headless is (sys.platform not in ("darwin", "win32"))


def test_make_lab_runs_the_lab_subcommand() -> None:
    assert _make_lab_recipe()[1:] == ["-m", "labkit", "lab"]
    printed = subprocess.run(_make_lab_recipe() + ["--print-command", "--port", "9"], cwd=ROOT, capture_output=True,
                             text=True, env=_environment(Path("/nonexistent")), check=True).stdout.strip()
    assert shlex.split(printed) == lab_command(uid=os.geteuid() if IS_ROOT else 1000, has_display=False,
                                               extra=["--port=9"])


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_as_this_user(tmp_path: Path) -> None:
    status, log = _serve([], tmp_path)
    assert status == 200, log[-3000:]
    assert ("--allow-root" in log.splitlines()[0]) is IS_ROOT  # the command the subcommand printed, then ran


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="the control needs root: JupyterLab refuses root without --allow-root")
def test_control_root_without_allow_root_is_refused(tmp_path: Path) -> None:
    """Control: make lab's server, but built as for a normal user (no --allow-root), does not come up as root."""
    port = _free_port()
    cmd = lab_command(uid=1000, has_display=False, extra=[f"--port={port}", "--ip=127.0.0.1"])
    run = subprocess.run(cmd, cwd=ROOT, env=_environment(tmp_path), capture_output=True, text=True, timeout=STARTUP_S)
    assert run.returncode != 0 and "--allow-root" in run.stderr + run.stdout


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_as_a_normal_user(tmp_path: Path) -> None:
    prefix, how = _non_root_prefix(tmp_path)
    if IS_ROOT and not prefix:
        pytest.skip(how)
    status, log = _serve(prefix, tmp_path)
    assert status == 200, f"as {how}: {log[-3000:]}"
    assert "--allow-root" not in log.splitlines()[0]
