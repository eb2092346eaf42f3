"""A fresh environment (issue 18): the wheel, installed into a new venv outside the clone, runs notebook 00.

The new venv gets only the built wheel. Its third-party dependencies (torch is several GB) come from this
interpreter's site-packages through a path file, which adds those folders but does not run their ``.pth`` hooks, so
the clone's editable install is not visible there. The notebook runs from a temporary folder with ``HOME`` and the
lab's path variables pointing away from the clone.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd or Path("/"), capture_output=True, text=True)  # never the clone's folder
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_wheel_in_a_new_venv_runs_notebook_00_outside_the_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    source = tmp_path / "source"  # build from a copy: setuptools leaves build/ and *.egg-info beside its input
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "artifacts", "results", "data", "notebooks", "*.egg-info", "__pycache__"))
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist))
    wheel = next(dist.glob("labkit-*.whl"))
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "zz_lab_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    where = _run(str(python), "-c", "import labkit, pathlib; print(pathlib.Path(labkit.__file__).resolve())")
    assert str(site) in where and str(REPO_ROOT) not in where, f"labkit imported from {where}"
    shipped = _run(str(python), "-c", "from labkit.core import paths; print(sorted(p.name for p in "
                                      "paths.teacher_dir().iterdir()))")
    assert "manifest.json" in shipped and "fashion-mnist__lenet5" in shipped, "the wheel must carry the teachers"

    work = tmp_path / "course"
    work.mkdir()
    (work / "00_orientation.ipynb").write_bytes((REPO_ROOT / "notebooks" / "00_orientation.ipynb").read_bytes())
    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fresh venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for var in ("LABKIT_DATA", "LABKIT_TEACHERS", "LABKIT_RESULTS", "LABKIT_ARTIFACTS", "PYTHONPATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(work)
    nb = nbformat.read(work / "00_orientation.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="fresh", resources={"metadata": {"path": str(work)}}).execute()
    first = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "labkit 0.1.0 from" in first and str(site) in first and str(REPO_ROOT) not in first
    loaded = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "retrain" not in loaded.lower(), "the shipped teacher should load from the wheel, not be retrained"
