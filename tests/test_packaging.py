"""Set-up files agree with each other: pyproject vs environment.yml, Makefile targets, CI script, README."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def _conda_pip_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = {}
    for line in lines[start + 1:]:
        m = re.match(r"\s+- (.+)$", line)
        if m:
            reqs[_name(m.group(1))] = m.group(1).strip()
    return reqs


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    declared = {_name(r): r.replace(" ", "") for r in requirements}
    conda = {k: v.replace(" ", "") for k, v in _conda_pip_requirements().items()}
    assert declared == conda, "pyproject.toml and environment.yml must list the same packages and ranges"
    for must in ("torch", "torchvision", "jupyterlab", "ipywidgets", "matplotlib", "plotly", "anywidget", "nbval",
                 "tqdm"):
        assert must in declared
    assert all(re.search(r"[<>]", spec) for spec in declared.values()), "use version ranges, not exact pins"


def test_makefile_and_ci():
    make = (ROOT / "Makefile").read_text()
    for target in ("setup:", "lab:", "test:"):
        assert re.search(rf"^{target}", make, re.M)
    assert "LABKIT_PROFILE=$(NBVAL_PROFILE)" in make and "--nbval-lax" in make
    ci = (ROOT / ".ci" / "run").read_text()
    assert "dataset-fashion-mnist" in ci and "chromium" in ci and "make test" in ci


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    head = text[:1200]
    assert "make lab" in head and "make test" in head


def test_the_lab_environment_validates_notebooks_without_rfc3987_syntax():
    """``make setup`` removes rfc3987-syntax: with it, every ``import jsonschema`` (Jupyter's server, each widget
    kernel, nbval, nbgrader) built an Earley parser for 1.7 s (docs/speed.md). ``pip check`` must stay clean."""
    if not (Path(sys.prefix) / ".labkit-setup").exists():
        pytest.skip("not running in the environment that make setup made")
    probe = subprocess.run([sys.executable, "-c", "import sys, jsonschema; print('rfc3987_syntax' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
