"""Named size profiles: ``smoke`` (CI), ``laptop`` (CPU default), ``gpu`` (CUDA default) and ``paper``.

A profile fixes how big every experiment is. Pick one with ``LABKIT_PROFILE`` or by
passing a name. Each method's sizes are a table per profile name in its config
(:class:`labkit.core.config.MethodConfig`); the profile itself holds only what the runner reads.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

from labkit.core.errors import UnknownNameError


@dataclass(frozen=True)
class Profile:
    """A named scale: its description and how many training images the runner loads."""

    name: str
    description: str
    train_limit: int | None  # how many training images with-data methods see (None = all)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI and nbval: every notebook in about 90 s on 2 CPU cores; numbers are not meaningful.",
        train_limit=3000,
    ),
    "laptop": Profile(
        name="laptop",
        description="Default on CPU: every notebook in at most 5 minutes on 2 cores, meaningful accuracy.",
        train_limit=None,
    ),
    "gpu": Profile(
        name="gpu",
        description="Default on CUDA: a classroom GPU (a free Colab T4): every notebook's main run in at most 5 "
                    "minutes there, at sizes well above the laptop's (sized by the cost model, docs/cost.md).",
        train_limit=None,
    ),
    "paper": Profile(
        name="paper",
        description="Only when asked for: the papers' transfer-set sizes and epochs (hours, even on a GPU).",
        train_limit=None,
    ),
}


def default_profile_name() -> str:
    """``$LABKIT_PROFILE`` if set, else ``gpu`` with CUDA and ``laptop`` without (``paper`` only when asked for)."""
    env = os.environ.get("LABKIT_PROFILE", "").strip()
    if env:
        return env
    return "gpu" if torch.cuda.is_available() else "laptop"


def get_profile(name: str | Profile | None = None) -> Profile:
    """Return the named profile (default: :func:`default_profile_name`); unknown names list the valid ones."""
    if isinstance(name, Profile):
        return name
    if name is not None and not isinstance(name, str):
        raise UnknownNameError("profile", repr(name), list(PROFILES),
                               hint=f"A profile is a name (a string) or None, not {name!r} ({type(name).__name__}).")
    if name:
        source = "It was given as the profile argument (e.g. PROFILE in a notebook's parameters cell)."
    else:
        source = "It came from the environment variable $LABKIT_PROFILE; unset it or set it to a valid name."
    key = (name or default_profile_name()).strip().lower()
    if key not in PROFILES:
        raise UnknownNameError("profile", key, list(PROFILES), hint=source)
    return PROFILES[key]


_LAPTOPS = object()  # pick's default gpu value: the laptop's


def pick(profile: Profile | str, smoke: object, laptop: object, paper: object, gpu: object = _LAPTOPS) -> object:
    """Choose a value by profile name: ``pick(p, 200, 2000, 20000, gpu=5000)`` (``gpu`` defaults to the laptop's)."""
    return {"smoke": smoke, "laptop": laptop, "gpu": laptop if gpu is _LAPTOPS else gpu,
            "paper": paper}[get_profile(profile).name]
