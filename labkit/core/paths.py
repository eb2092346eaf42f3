"""Where the lab keeps data, teacher checkpoints and results (all overridable by environment)."""
from __future__ import annotations

import os
from pathlib import Path

#: The repository root when labkit is used from a checkout (editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Where the Debian package ``dataset-fashion-mnist`` puts its IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def lab_home() -> Path:
    """The lab's user folder for caches: ``$LABKIT_HOME``, else ``$XDG_CACHE_HOME/labkit``, else
    ``~/.cache/labkit``. Teachers the lab trains go under it, and outside a clone its data and results too."""
    env = os.environ.get("LABKIT_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "labkit"


def _default_root() -> Path:
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT
    return lab_home()


def data_dir() -> Path:
    """The lab's data directory: ``$LABKIT_DATA`` or ``data/`` in the checkout."""
    env = os.environ.get("LABKIT_DATA")
    return Path(env).expanduser() if env else _default_root() / "data"


#: What the lab ships inside the package (so a wheel or ``pip install .`` carries it): teachers, reference summaries.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
#: The teachers the lab ships.
SHIPPED_TEACHERS = SHIPPED_DIR / "teachers"


def teacher_dir() -> Path:
    """Teacher checkpoints and their manifest: ``$LABKIT_TEACHERS`` or the lab's shipped ones
    (``labkit/core/shipped/teachers``, package data)."""
    env = os.environ.get("LABKIT_TEACHERS")
    return Path(env).expanduser() if env else SHIPPED_TEACHERS


def user_teacher_dir() -> Path:
    """Where teachers the lab does not ship are trained and cached: ``$LABKIT_TEACHERS`` if set, else
    ``teachers/`` in :func:`lab_home` (default ``~/.cache/labkit/teachers``), never the package's tracked
    ``labkit/core/shipped/teachers``."""
    env = os.environ.get("LABKIT_TEACHERS")
    return Path(env).expanduser() if env else lab_home() / "teachers"


def results_dir() -> Path:
    """Result records: ``$LABKIT_RESULTS`` or ``results/`` in the checkout."""
    env = os.environ.get("LABKIT_RESULTS")
    return Path(env).expanduser() if env else _default_root() / "results"


def artifacts_dir() -> Path:
    """Screenshots and other throwaway test artefacts (git-ignored)."""
    env = os.environ.get("LABKIT_ARTIFACTS")
    return Path(env).expanduser() if env else _default_root() / "artifacts"
