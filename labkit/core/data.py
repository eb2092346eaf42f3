"""Data sets as tensors: Fashion-MNIST, MNIST, CIFAR-10 and seeded 2-D toy problems.

One entry point, :func:`load_dataset`, returns a :class:`LabeledTensors` (images in
[0, 1], float32, ``N×C×H×W``; labels int64) that can live on any device.

Where real data comes from, in order:

1. ``$LABKIT_DATA`` (or ``data/`` in the checkout);
2. for Fashion-MNIST only, the Debian package location ``/usr/share/datasets/fashion-mnist``;
3. a torchvision download into the lab's data directory.

If none works, one :class:`~labkit.core.errors.DatasetNotFoundError` names all three ways.
The validation split is carved from the training set with a fixed seed, so the test
set is never used for model selection.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import socket
import struct
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch

from labkit.core import paths
from labkit.core.errors import DatasetNotFoundError, UnknownNameError

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

#: Seed of the fixed train/validation carve-out (independent of any run's seed).
SPLIT_SEED = 20240601
SPLITS = ("train", "val", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is: its name, class names and the shape of one input."""

    name: str
    classes: tuple[str, ...]
    image_shape: tuple[int, ...]
    source: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def is_image(self) -> bool:
        """True for image data sets (C×H×W), False for 2-D toy points."""
        return len(self.image_shape) == 3


@dataclass
class LabeledTensors:
    """Inputs ``x`` (float32 in [0,1]) and labels ``y`` (int64) plus their :class:`DatasetInfo`."""

    x: torch.Tensor
    y: torch.Tensor
    info: DatasetInfo
    split: str = "train"
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.x.device

    def to(self, device: torch.device | str) -> LabeledTensors:
        """A copy on ``device``."""
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def subset(self, n: int | None, seed: int = 0, balanced: bool = True) -> LabeledTensors:
        """A seeded subset of ``n`` samples, class-balanced when ``balanced`` (None or n ≥ len: all)."""
        if n is None or n >= len(self):
            return self
        idx = balanced_indices(self.y, n, seed) if balanced else \
            torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        idx = idx.to(self.x.device)
        return replace(self, x=self.x[idx], y=self.y[idx])

    def unlabeled(self) -> torch.Tensor:
        """Only the inputs: what an 'unlabeled data' method is allowed to see."""
        return self.x


def balanced_indices(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of a seeded, class-balanced subset of size ``n`` (remainder spread over classes)."""
    g = torch.Generator().manual_seed(seed)
    y_cpu = y.detach().cpu()
    classes = torch.unique(y_cpu)
    per = n // len(classes)
    extra = n - per * len(classes)
    picks = []
    for i, c in enumerate(classes.tolist()):
        members = torch.nonzero(y_cpu == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        picks.append(members[: per + (1 if i < extra else 0)])
    idx = torch.cat(picks)
    return idx[torch.randperm(len(idx), generator=g)]


# --------------------------------------------------------------------------- readers

def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (optionally ``.gz``) into a uint8 tensor of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetNotFoundError(f"{path} is not an IDX file (bad magic number). Delete it and fetch again: "
                                   "python -m labkit data fetch NAME")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DatasetNotFoundError(f"{path}: IDX type {dtype_code:#x} is not unsigned bytes.")
    dims = struct.unpack(">" + "I" * ndim, data[4: 4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)
    if len(data) != expected:
        raise DatasetNotFoundError(f"{path} is truncated or corrupt ({len(data)} bytes, expected {expected}). "
                                   "Delete it and fetch again: python -m labkit data fetch NAME")
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def write_idx(path: str | Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file (``.gz`` if the name ends so); used by tests and fetch."""
    path = Path(path)
    array = array.to(torch.uint8).contiguous()
    header = bytes([0, 0, 0x08, array.dim()]) + struct.pack(">" + "I" * array.dim(), *array.shape)
    payload = header + array.numpy().tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(payload)


def _find_idx_pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    names = IDX_FILES[split]
    found = []
    for stem in names:
        for cand in (directory / stem, directory / f"{stem}.gz",
                     directory / stem.replace("-idx", ".idx")):
            if cand.is_file():
                found.append(cand)
                break
        else:
            return None
    return found[0], found[1]


def _idx_dirs(root: Path, name: str) -> list[Path]:
    tv = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
    return [root / name, root / tv / "raw", root]


def _load_idx_split(directory: Path, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    pair = _find_idx_pair(directory, split)
    if pair is None:
        return None
    images, labels = read_idx(pair[0]), read_idx(pair[1]).long()
    if images.shape[0] != labels.shape[0]:
        raise DatasetNotFoundError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels.")
    return images.unsqueeze(1), labels


def _load_cifar_dir(directory: Path, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if not all((directory / f).is_file() for f in files):
        return None
    xs, ys = [], []
    for f in files:
        with open(directory / f, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(torch.as_tensor(entry["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32))
        ys.append(torch.as_tensor(entry.get("labels", entry.get("fine_labels")), dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _download(name: str, root: Path) -> None:
    """Ask torchvision to download ``name`` into ``root`` (raises on any failure)."""
    if os.environ.get("LABKIT_OFFLINE"):
        raise RuntimeError("LABKIT_OFFLINE is set, so no download was tried")
    import torchvision

    cls = {"fashion-mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    root.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    finally:
        socket.setdefaulttimeout(old)


@lru_cache(maxsize=8)
def _raw_real(name: str, root_str: str,
              allow_download: bool) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], str]:
    """Load train+test uint8 tensors of a real data set through the source chain."""
    root = Path(root_str)
    loader = _load_cifar_dir if name == "cifar10" else _load_idx_split

    def dirs() -> list[Path]:
        return [root / "cifar-10-batches-py"] if name == "cifar10" else _idx_dirs(root, name)

    tried: list[str] = []
    for d in dirs():
        train, test = loader(d, "train"), loader(d, "test")
        if train is not None and test is not None:
            return {"train": train, "test": test}, str(d)
    tried.append(f"1. the lab's data directory {root} (set LABKIT_DATA to change it): no files found")
    if name == "fashion-mnist":
        d = paths.DEBIAN_FASHION_MNIST
        train, test = loader(d, "train"), loader(d, "test")
        if train is not None and test is not None:
            return {"train": train, "test": test}, str(d)
        tried.append(f"2. the Debian package location {d}: not installed "
                     "(as root: apt-get install dataset-fashion-mnist)")
    else:
        tried.append("2. a Debian package: none exists for this data set")
    if allow_download:
        try:
            _download(name, root)
            for d in dirs():
                train, test = loader(d, "train"), loader(d, "test")
                if train is not None and test is not None:
                    return {"train": train, "test": test}, str(d)
            tried.append(f"3. a torchvision download into {root}: finished but left no readable files")
        except Exception as exc:  # noqa: BLE001 - we report every failure together
            tried.append(f"3. a torchvision download into {root}: failed ({type(exc).__name__}: {exc})")
    else:
        tried.append("3. a torchvision download: not tried (download=False)")
    raise DatasetNotFoundError(
        f"Could not load data set {name!r}. Tried, in order:\n  " + "\n  ".join(tried) +
        f"\nFix one of them: copy the files into {root}, install the Debian package, or run "
        f"'python -m labkit data fetch {name}' on a machine with internet."
    )


# --------------------------------------------------------------------------- toy 2-D

TOY_FAMILIES = ("blobs", "moons", "spirals")


def make_toy2d(family: str, n: int, num_classes: int = 3, noise: float = 0.08,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded 2-D points in [0,1]² for a toy family (``blobs``, ``moons``, ``spirals``), ≥ 3 classes allowed."""
    if family not in TOY_FAMILIES:
        raise UnknownNameError("toy2d family", family, TOY_FAMILIES)
    if num_classes < 2:
        raise ValueError("toy2d needs at least 2 classes")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    y = y[torch.randperm(n, generator=g)]
    t = torch.rand(n, generator=g)
    k = y.float()
    if family == "blobs":
        angle = 2 * math.pi * k / num_classes
        centre = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        pts = centre + torch.randn(n, 2, generator=g) * (0.35 + 3 * noise)
    elif family == "moons":
        # interleaved half-circles, each rotated and shifted so neighbours hook into each other
        angle = math.pi * t + math.pi * k
        arc = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        shift = torch.stack([k * 1.0, -0.5 * (k % 2)], 1)
        pts = arc + shift
    else:  # spirals
        r = 0.15 + t
        angle = 2 * math.pi * k / num_classes + 3.0 * t
        pts = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    pts = pts + torch.randn(n, 2, generator=g) * noise
    lo, hi = pts.min(0).values, pts.max(0).values
    pts = 0.05 + 0.9 * (pts - lo) / (hi - lo)
    return pts.float(), y.long()


def _parse_toy(name: str) -> tuple[str, int]:
    """``toy2d-<family>-<classes>`` → (family, classes); the class count must be a whole number."""
    parts = name.split("-")
    family = parts[1] if len(parts) > 1 else "blobs"
    if len(parts) > 2 and not parts[2].isdigit():
        raise UnknownNameError("dataset", name, list(DATASETS),
                               hint=f"A toy data set is toy2d-<family>-<classes> with the class count in digits, "
                                    f"e.g. toy2d-{family}-3; {parts[2]!r} is not a number.")
    k = int(parts[2]) if len(parts) > 2 else 3
    return family, k


# --------------------------------------------------------------------------- entry point

DATASETS = ("fashion-mnist", "mnist", "cifar10", "toy2d-blobs", "toy2d-moons", "toy2d-spirals")
VAL_SIZE = {"fashion-mnist": 5000, "mnist": 5000, "cifar10": 5000}
TOY_SIZES = {"train": 3000, "val": 600, "test": 1500}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a data set name, without loading it."""
    name = canonical_name(name)
    if name == "fashion-mnist":
        return DatasetInfo(name, FASHION_CLASSES, (1, 28, 28))
    if name == "mnist":
        return DatasetInfo(name, MNIST_CLASSES, (1, 28, 28))
    if name == "cifar10":
        return DatasetInfo(name, CIFAR10_CLASSES, (3, 32, 32))
    _, k = _parse_toy(name)
    return DatasetInfo(name, tuple(f"class {i}" for i in range(k)), (2,))


def canonical_name(name: str) -> str:
    """Normalise a data set name (``FashionMNIST`` → ``fashion-mnist``); unknown names raise."""
    key = name.strip().lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
               "toy2d": "toy2d-blobs"}
    key = aliases.get(key, key)
    if key.startswith("toy2d-"):
        family, k = _parse_toy(key)
        if family in TOY_FAMILIES and k >= 2:
            return key
    if key not in DATASETS:
        raise UnknownNameError("dataset", name, list(DATASETS) + ["toy2d-<family>-<classes>"])
    return key


def load_dataset(name: str, split: str = "train", *, device: torch.device | str | None = None,
                 limit: int | None = None, seed: int = 0, root: str | Path | None = None,
                 download: bool = True) -> LabeledTensors:
    """Load one split (``train``, ``val`` or ``test``) of a data set as tensors.

    ``limit`` takes a seeded, class-balanced subset. ``val`` is a fixed carve-out of the
    official training set, disjoint from ``train``.
    """
    name = canonical_name(name)
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    info = dataset_info(name)
    if name.startswith("toy2d"):
        family, k = _parse_toy(name)
        offset = {"train": 0, "val": 1, "test": 2}[split]
        x, y = make_toy2d(family, TOY_SIZES[split], k, seed=1000 + offset)
        out = LabeledTensors(x, y, replace(info, source="generated"), split)
    else:
        root_path = Path(root) if root is not None else paths.data_dir()
        raw, source = _raw_real(name, str(root_path.resolve()), download)
        if split == "test":
            xu, y = raw["test"]
        else:
            xu_all, y_all = raw["train"]
            perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(SPLIT_SEED))
            nval = min(VAL_SIZE[name], len(y_all) // 10)  # small (test) files keep 90% for training
            idx = perm[:nval] if split == "val" else perm[nval:]
            idx, _ = idx.sort()
            xu, y = xu_all[idx], y_all[idx]
        x = xu.float().div_(255.0)
        out = LabeledTensors(x, y.long(), replace(info, source=source), split)
    out = out.subset(limit, seed=seed)
    return out.to(device) if device is not None else out


def load_splits(name: str, *, device: torch.device | str | None = None, train_limit: int | None = None,
                seed: int = 0, root: str | Path | None = None) -> dict[str, LabeledTensors]:
    """``{'train', 'val', 'test'}`` of a data set in one call (only ``train`` is limited)."""
    return {
        "train": load_dataset(name, "train", device=device, limit=train_limit, seed=seed, root=root),
        "val": load_dataset(name, "val", device=device, root=root),
        "test": load_dataset(name, "test", device=device, root=root),
    }


def fetch(name: str, root: str | Path | None = None) -> str:
    """Make a data set available (data dir, Debian location or download); return where it was found."""
    name = canonical_name(name)
    if name.startswith("toy2d"):
        return "generated on the fly (nothing to fetch)"
    root_path = Path(root) if root is not None else paths.data_dir()
    _, source = _raw_real(name, str(root_path.resolve()), True)
    return source
