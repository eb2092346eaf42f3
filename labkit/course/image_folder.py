"""An instructor's private evaluation split: a folder of labelled images (``<folder>/<class>/*.png``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from labkit.core.data import DatasetInfo
from labkit.core.errors import DatasetNotFoundError, LabkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_image_folder(folder: str | Path, info: DatasetInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels from ``folder/<class>/``, where ``<class>`` is a class name of ``info`` or its index.

    Every image must have the data set's shape (e.g. 28×28 grey for Fashion-MNIST); pixels become floats in [0, 1].
    """
    from PIL import Image

    root = Path(folder)
    if not root.is_dir():
        raise DatasetNotFoundError(f"The evaluation folder {root} does not exist; pass a folder holding one "
                                   "sub-folder per class (named by class name or index) of images.")
    names = {n.lower(): i for i, n in enumerate(info.classes)}
    c, h, w = info.image_shape
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        key = sub.name.lower()
        label = int(key) if key.isdigit() else names.get(key)
        if label is None or not 0 <= label < info.num_classes:
            raise LabkitError(f"{sub} is not a class of {info.name}: name each sub-folder by a class index "
                              f"(0..{info.num_classes - 1}) or name ({', '.join(info.classes)}).")
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = Image.open(f).convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                raise LabkitError(f"{f} is {img.size[0]}x{img.size[1]}; {info.name} images are {w}x{h}.")
            arr = np.asarray(img, dtype=np.uint8)
            xs.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
            ys.append(label)
    if not ys:
        raise LabkitError(f"No images under {root}/<class>/ ({', '.join(IMAGE_SUFFIXES)}).")
    x = torch.from_numpy(np.stack(xs)).float() / 255.0
    return x, torch.tensor(ys, dtype=torch.int64)
