"""``python -m labkit course extensions on|off``: nbgrader's instructor extensions as Jupyter itself reads them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from labkit.course.extensions import (
    LAB_EXTENSIONS,
    SERVER_EXTENSIONS,
    instructor_extensions_enabled,
    set_instructor_extensions,
)

pytest.importorskip("jupyter_server")
pytest.importorskip("jupyterlab_server")


def _as_jupyter_reads(etc: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """What the Jupyter server (its extension list) and JupyterLab (its page config) read at ``etc``."""
    from jupyter_server.extension.config import ExtensionConfigManager
    from jupyterlab_server.config import get_static_page_config

    server = ExtensionConfigManager(read_config_path=[str(etc)])
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(etc))  # JupyterLab's user level, read alone
    disabled = get_static_page_config(level="user").get("disabledExtensions", {})
    return {**{n: bool(server.enabled(n)) for n in SERVER_EXTENSIONS},
            **{n: not disabled.get(n, False) for n in LAB_EXTENSIONS}}


def test_off_and_on_are_what_jupyter_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc" / "jupyter"
    (etc / "jupyter_server_config.d").mkdir(parents=True)
    # what installing nbgrader leaves: every server extension on
    (etc / "jupyter_server_config.d" / "nbgrader.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": dict.fromkeys(SERVER_EXTENSIONS, True)}}))
    assert all(instructor_extensions_enabled(tmp_path).values())
    written = set_instructor_extensions(False, tmp_path)
    assert all(p.exists() for p in written) and len(written) == len(SERVER_EXTENSIONS) + 1
    assert instructor_extensions_enabled(tmp_path) == _as_jupyter_reads(etc, monkeypatch)
    assert not any(_as_jupyter_reads(etc, monkeypatch).values())
    set_instructor_extensions(True, tmp_path)
    assert all(_as_jupyter_reads(etc, monkeypatch).values()) and all(instructor_extensions_enabled(tmp_path).values())


def test_make_setup_left_them_off_in_the_lab_environment() -> None:
    if not (Path(sys.prefix) / ".labkit-setup").exists():
        pytest.skip("not running in the environment that make setup made")
    assert not any(instructor_extensions_enabled().values()), instructor_extensions_enabled()
