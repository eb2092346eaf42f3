"""Where a bench ran: the machine, the device and the library versions, for the leaderboard's header."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from labkit.core import LABKIT_VERSION, paths
from labkit.core.device import hardware_report, pick_device


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _command_line() -> str:
    """How this process was started (``python -m labkit bench ...`` for the CLI)."""
    if not sys.argv:
        return ""
    head = "python -m labkit" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return " ".join([head, *sys.argv[1:]])


def environment_info(device: torch.device | str | None = None, note: str = "") -> dict[str, Any]:
    """Machine, device and library versions for the leaderboard header."""
    dev = torch.device(device) if device is not None else pick_device()
    info: dict[str, Any] = dict(hardware_report(dev))
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchvision", "numpy", "plotly"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - optional
            pass
    versions["labkit"] = LABKIT_VERSION
    info.update({
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "git_commit": _git_commit(),
        "command": _command_line(),
    })
    if note:
        info["note"] = note
    return info
