"""Named size profiles: ``smoke`` (CI), ``laptop`` (CPU default) and ``paper`` (GPU default).

A profile fixes how big every experiment is. Pick one with ``LABKIT_PROFILE`` or by
passing a name; methods read their own sizes from :attr:`Profile.name`.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

from .errors import UnknownNameError


@dataclass(frozen=True)
class Profile:
    """Sizes shared by every experiment of one profile."""

    name: str
    description: str
    student_epochs: int
    batch_size: int
    train_limit: int | None  # how many training images with-data students see (None = all)
    lr: float = 1e-3

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI and nbval: every notebook in about 90 s on 2 CPU cores; numbers are not meaningful.",
        student_epochs=2,
        batch_size=128,
        train_limit=3000,
    ),
    "laptop": Profile(
        name="laptop",
        description="Default on CPU: every notebook in at most 5 minutes on 2 cores, meaningful accuracy.",
        student_epochs=12,
        batch_size=128,
        train_limit=None,
    ),
    "paper": Profile(
        name="paper",
        description="Default on GPU: the papers' transfer-set sizes and epochs.",
        student_epochs=40,
        batch_size=256,
        train_limit=None,
    ),
}


def default_profile_name() -> str:
    """``$LABKIT_PROFILE`` if set, else ``paper`` with CUDA and ``laptop`` without."""
    env = os.environ.get("LABKIT_PROFILE", "").strip()
    if env:
        return env
    return "paper" if torch.cuda.is_available() else "laptop"


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the named profile (default: :func:`default_profile_name`); unknown names list the valid ones."""
    if isinstance(name, Profile):
        return name
    name = (name or default_profile_name()).strip().lower()
    if name not in PROFILES:
        raise UnknownNameError("profile", name, list(PROFILES))
    return PROFILES[name]


def pick(profile: Profile | str, smoke: object, laptop: object, paper: object) -> object:
    """Choose one of three values by profile name: ``pick(p, 200, 2000, 20000)``."""
    return {"smoke": smoke, "laptop": laptop, "paper": paper}[get_profile(profile).name]
