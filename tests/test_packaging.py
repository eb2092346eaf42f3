"""Set-up files agree with each other: pyproject vs environment.yml, Makefile targets, CI script, README."""
import re
from pathlib import Path

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
