"""Teacher cache: load if present and the sha256 matches, else train with a fixed seed and save.

The lab's own checkpoints live in :func:`labkit.core.paths.teacher_dir` beside ``manifest.json``, which
records each file's sha256, its accuracies and the command that regenerates it; a teacher the lab does not ship
is trained into :func:`labkit.core.paths.user_teacher_dir` (a user cache with its own manifest).
A file whose hash does not match, or that fails to load, is moved aside (never
deleted) and the teacher is retrained, with a message saying so.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from labkit.core import paths
from labkit.core.data import canonical_name, dataset_info, load_dataset
from labkit.core.device import pick_device
from labkit.core.errors import CheckpointError
from labkit.core.losses import build_loss
from labkit.core.metrics import accuracy
from labkit.core.models import model_for
from labkit.core.train import fit, random_affine

DEFAULT_TEACHER = {"fashion-mnist": "lenet5", "mnist": "lenet5", "cifar10": "alexnet"}
DEFAULT_STUDENT = {"fashion-mnist": "lenet5-half", "mnist": "lenet5-half", "cifar10": "alexnet-half"}


def default_teacher_arch(dataset: str) -> str:
    """The lab's teacher architecture for a data set."""
    dataset = canonical_name(dataset)
    return DEFAULT_TEACHER.get(dataset, "mlp")


def default_student_arch(dataset: str) -> str:
    """The lab's student architecture for a data set."""
    dataset = canonical_name(dataset)
    return DEFAULT_STUDENT.get(dataset, "mlp-small")


@dataclass(frozen=True)
class TeacherSpec:
    """Everything that determines a trained teacher; its hash names the checkpoint."""

    dataset: str
    arch: str
    seed: int = 0
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    augment: str = "none"  # none | shift | shift-flip

    @property
    def key(self) -> str:
        """File stem: readable names plus a short hash of the full recipe."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.dataset}__{self.arch}__seed{self.seed}__{digest}"

    def command(self) -> str:
        """The CLI command that regenerates this teacher."""
        return (f"python -m labkit teacher train --dataset {self.dataset} --arch {self.arch} --seed {self.seed} "
                f"--epochs {self.epochs} --retrain")


def default_spec(dataset: str, arch: str | None = None, seed: int = 0, epochs: int | None = None) -> TeacherSpec:
    """The lab's teacher recipe for a data set (fixed, so every profile shares one teacher)."""
    dataset = canonical_name(dataset)
    arch = arch or default_teacher_arch(dataset)
    if dataset.startswith("toy2d"):
        spec = TeacherSpec(dataset, arch, seed, epochs=60, lr=1e-2, batch_size=128)
    elif dataset == "cifar10":
        spec = TeacherSpec(dataset, arch, seed, epochs=40, lr=2e-3, batch_size=128, weight_decay=5e-4,
                           augment="shift-flip")
    elif dataset == "mnist":
        spec = TeacherSpec(dataset, arch, seed, epochs=8, lr=2e-3)
    else:
        spec = TeacherSpec(dataset, arch, seed, epochs=15, lr=2e-3)
    return replace(spec, epochs=epochs) if epochs is not None else spec


@dataclass
class Teacher:
    """A ready teacher: the module (eval mode), its recipe, accuracies and where it came from."""

    model: nn.Module
    spec: TeacherSpec
    test_acc: float
    val_acc: float
    path: Path
    source: str  # "loaded" or "trained"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest_path(directory: Path) -> Path:
    return directory / "manifest.json"


def read_manifest(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The teacher manifest (empty if none)."""
    path = _manifest_path(directory or paths.teacher_dir())
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}). Restore it from git (git checkout -- {path}) "
                              "or delete it to retrain every teacher.") from exc


def _write_json_atomic(path: Path, payload: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _move_aside(path: Path, reason: str) -> Path:
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    msg = f"Teacher checkpoint {path} {reason}; moved it to {target.name} and retraining with a fixed seed."
    warnings.warn(msg, stacklevel=3)
    print(msg)
    return target


def train_teacher(spec: TeacherSpec, device: torch.device | None = None,
                  progress: bool = True) -> tuple[nn.Module, float, float, float]:
    """Train a teacher from its spec; return (model, val_acc, test_acc, seconds). Selection on validation."""
    device = device or pick_device()
    info = dataset_info(spec.dataset)
    train = load_dataset(spec.dataset, "train", device=device)
    val = load_dataset(spec.dataset, "val", device=device)
    test = load_dataset(spec.dataset, "test", device=device)
    torch.manual_seed(spec.seed)
    model = model_for(spec.arch, info).to(device)
    aug = None
    if spec.augment != "none" and info.is_image:
        aug = random_affine(max_shift=2, flip=spec.augment == "shift-flip")
    result = fit(model, train.x, train.y, build_loss("ce"), val=val, epochs=spec.epochs, batch_size=spec.batch_size,
                 lr=spec.lr, weight_decay=spec.weight_decay, device=device, seed=spec.seed, augment=aug,
                 progress=progress, desc=f"teacher {spec.arch}")
    return model, float(result.best_val_acc or 0.0), accuracy(model, test.x, test.y), result.seconds


def _load_verified(directory: Path, spec: TeacherSpec, device: torch.device) -> tuple[Teacher | None, str]:
    """``(teacher, "")`` if ``directory``'s checkpoint matches the manifest's sha256 and loads; else ``(None, why)``,
    with ``why`` empty when there is no file at all. Nothing on disk changes."""
    path = directory / f"{spec.key}.pt"
    if not path.exists():
        return None, ""
    entry = (read_manifest(directory) if directory.exists() else {}).get(spec.key)
    if entry is None:
        return None, "has no manifest entry, so its hash cannot be verified"
    if sha256_file(path) != entry.get("sha256"):
        return None, "does not match the sha256 in manifest.json (corrupt or changed)"
    model = model_for(spec.arch, dataset_info(spec.dataset))
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is treated the same
        return None, f"could not be loaded ({type(exc).__name__})"
    model.to(device).eval()
    return Teacher(model, spec, float(entry["test_acc"]), float(entry["val_acc"]), path, "loaded"), ""


def get_teacher(dataset: str, arch: str | None = None, *, seed: int = 0, epochs: int | None = None,
                device: torch.device | str | None = None, retrain: bool = False, progress: bool = True,
                directory: Path | None = None) -> Teacher:
    """Load the cached teacher if its sha256 matches the manifest; otherwise train it and save it."""
    device = torch.device(device) if device is not None else pick_device()
    spec = default_spec(dataset, arch, seed, epochs)
    if directory is None:
        # a teacher the lab ships is read (and, if corrupt, repaired) where it is tracked; any other one is
        # trained into the user's cache, so the checkout's manifest never changes under a learner
        shipped = paths.teacher_dir()
        directory = shipped if spec.key in (read_manifest(shipped) if shipped.exists() else {}) \
            else paths.user_teacher_dir()
        if directory == shipped and not os.access(shipped, os.W_OK):
            # an installed, read-only package: load the shipped file if it verifies, else repair in the user cache
            loaded, _ = _load_verified(shipped, spec, device)
            if loaded is not None and not retrain:
                return loaded
            directory = paths.user_teacher_dir()
    path = directory / f"{spec.key}.pt"
    if path.exists() and not retrain:
        loaded, why = _load_verified(directory, spec, device)
        if loaded is not None:
            return loaded
        _move_aside(path, why)
    model, val_acc, test_acc, seconds = train_teacher(spec, device, progress)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
    manifest = read_manifest(directory)
    manifest[spec.key] = {
        "file": path.name, "sha256": sha256_file(path), "spec": asdict(spec), "val_acc": round(val_acc, 5),
        "test_acc": round(test_acc, 5), "command": spec.command(), "torch": torch.__version__,
        "device": str(device), "train_seconds": round(seconds, 1),
    }
    _write_json_atomic(_manifest_path(directory), manifest)
    model.eval()
    return Teacher(model, spec, test_acc, val_acc, path, "trained")
