"""nbgrader's instructor extensions (formgrader, assignment list): off in the learners' lab, on for an instructor.

The same JSON files that ``jupyter server extension enable|disable --sys-prefix`` and ``jupyter labextension
enable|disable --level=sys_prefix`` write, written directly: those two tools start the whole Jupyter server and
JupyterLab application to do it, about 23 s of ``make setup`` on two cores.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: the server extensions nbgrader registers in ``etc/jupyter/jupyter_server_config.d/nbgrader.json``
SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.validate_assignment",
                     "nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.course_list")
#: nbgrader's JupyterLab extension (its menus and panels)
LAB_EXTENSIONS = ("@jupyter/nbgrader",)


def _jupyter_etc(prefix: str | Path | None) -> Path:
    """The sys-prefix level's Jupyter config folder of ``prefix`` (default: this Python environment)."""
    return Path(prefix if prefix is not None else sys.prefix) / "etc" / "jupyter"


def set_instructor_extensions(enabled: bool, prefix: str | Path | None = None) -> list[Path]:
    """Turn nbgrader's server and JupyterLab extensions on or off at the sys-prefix level of ``prefix`` (default:
    this Python environment); returns the files written. JupyterLab reads them at its next start."""
    from jupyter_server.config_manager import BaseJSONConfigManager  # a JSON helper: nothing starts

    etc = _jupyter_etc(prefix)
    server = BaseJSONConfigManager(config_dir=str(etc / "jupyter_server_config.d"), read_directory=False)
    written = []
    for name in SERVER_EXTENSIONS:
        server.update(name, {"ServerApp": {"jpserver_extensions": {name: enabled}}})
        written.append(Path(server.file_name(name)))
    lab = BaseJSONConfigManager(config_dir=str(etc / "labconfig"), read_directory=False)
    state = None if enabled else True  # None removes the entry
    lab.update("page_config", {"disabledExtensions": dict.fromkeys(LAB_EXTENSIONS, state),
                               "lockedExtensions": dict.fromkeys(LAB_EXTENSIONS, state)})
    written.append(Path(lab.file_name("page_config")))
    return written


def instructor_extensions_enabled(prefix: str | Path | None = None) -> dict[str, bool]:
    """Each extension's state as the Jupyter server and JupyterLab will read it at ``prefix``'s sys-prefix level."""
    from jupyter_server.config_manager import BaseJSONConfigManager

    etc = _jupyter_etc(prefix)
    server = BaseJSONConfigManager(config_dir=str(etc), read_directory=True).get("jupyter_server_config")
    listed = server.get("ServerApp", {}).get("jpserver_extensions", {})
    page = BaseJSONConfigManager(config_dir=str(etc / "labconfig"), read_directory=False).get("page_config")
    disabled = page.get("disabledExtensions", {})
    return {**{n: bool(listed.get(n, False)) for n in SERVER_EXTENSIONS},
            **{n: not disabled.get(n, False) for n in LAB_EXTENSIONS}}
