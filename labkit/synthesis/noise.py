"""Noise images drawn without any data: the starting points of ZSDB3KD's pseudo-samples.

Three families (:data:`NOISE_FAMILIES`), every one seeded by a ``torch.Generator`` and valued in [0, 1]:

* ``"authors"`` (:func:`authors_noise`): ZSDB3KD's noise, independent pixels;
* ``"smooth"`` (:func:`smooth_noise`): low-frequency blobs and gradients;
* ``"dead-leaves"`` (:func:`dead_leaves_noise`): flat shapes stacked on a background.
"""
from __future__ import annotations

import torch

from labkit.core.errors import LabkitError


def authors_noise(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """The authors' noise: ``clip((U[0,1) + 0.2)·s₁ + N(0,1)·s₂, 0, 1)``, ``s₁, s₂ ~ U(0,1)`` per image.

    Pixels are independent: under this noise some classes are very rare for an image classifier.
    """
    scale_shape = (n,) + (1,) * len(shape)
    s1 = torch.rand(scale_shape, generator=generator)
    s2 = torch.rand(scale_shape, generator=generator)
    x = (torch.rand((n,) + tuple(shape), generator=generator) + 0.2) * s1 \
        + torch.randn((n,) + tuple(shape), generator=generator) * s2
    return x.clamp_(0.0, 1.0)


def _image_dims(shape: tuple[int, ...], family: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of an image shape; the image-prior noise families need images."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return 1, int(shape[0]), int(shape[1])
    raise LabkitError(f"The {family!r} noise family needs image inputs (C, H, W), got shape {tuple(shape)}; "
                      "use noise='authors' (i.i.d. pixels) for other inputs.")


def smooth_noise(n: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Low-frequency noise: Gaussian noise on a grid a quarter of the image side, upsampled bilinearly,
    standardised, then ``sigmoid(gain·z + bias)`` with ``gain ~ U(0,3)``, ``bias ~ N(0, 1.5²)`` per image.

    A generic image prior (neighbouring pixels are alike), nothing learnt from any data set: blobs and
    gradients instead of per-pixel snow. Values lie in (0, 1).
    """
    c, h, w = _image_dims(shape, "smooth")
    z = torch.randn((n, c, max(2, h // 4), max(2, w // 4)), generator=generator)
    z = torch.nn.functional.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
    z = z / z.flatten(1).std(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    gain = 3 * torch.rand((n, 1, 1, 1), generator=generator)
    bias = 1.5 * torch.randn((n, 1, 1, 1), generator=generator)
    return torch.sigmoid(gain * z + bias).reshape((n,) + tuple(shape))


def dead_leaves_noise(n: int, shape: tuple[int, ...], generator: torch.Generator, max_shapes: int = 6) -> torch.Tensor:
    """Dead-leaves noise: a flat background of random grey (colour) with 1-``max_shapes`` opaque shapes stacked on it.

    Every shape is an ellipse or an axis-aligned rectangle with a random centre (within 80 % of the half-side
    from the middle), random half-axes (10-80 % of the half-side) and a random flat intensity ``U(0,1)`` per
    channel; later shapes cover earlier ones. This is the classic dead-leaves model of natural images
    (Lee, Mumford & Huang 2001), used as data-free training images by Baradad et al. (NeurIPS 2021): edges,
    occlusion and flat regions, nothing learnt from any data set.
    """
    c, h, w = _image_dims(shape, "dead-leaves")
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    col = (n, c, 1, 1)
    one = (n, 1, 1, 1)
    img = torch.rand(col, generator=generator).expand(n, c, h, w).clone()
    k = torch.randint(1, max_shapes + 1, (n,), generator=generator).view(one)
    for layer in range(max_shapes):
        cx, cy = (torch.rand(one, generator=generator) * 1.6 - 0.8 for _ in range(2))
        a, b = (0.1 + 0.7 * torch.rand(one, generator=generator) for _ in range(2))
        rect = torch.rand(one, generator=generator) < 0.5
        dx, dy = (xx - cx) / a, (yy - cy) / b
        inside = torch.where(rect, (dx.abs() < 1) & (dy.abs() < 1), dx * dx + dy * dy < 1) & (layer < k)
        img = torch.where(inside, torch.rand(col, generator=generator), img)
    return img.reshape((n,) + tuple(shape))


#: noise families for :func:`noise_images` (ZSDB3KD's ``noise`` option)
NOISE_FAMILIES = {"authors": authors_noise, "smooth": smooth_noise, "dead-leaves": dead_leaves_noise}


def noise_images(n: int, shape: tuple[int, ...], generator: torch.Generator,
                 device: torch.device | str = "cpu", family: str = "authors") -> torch.Tensor:
    """``n`` noise images of one of the :data:`NOISE_FAMILIES` (default: the authors')."""
    if family not in NOISE_FAMILIES:
        raise LabkitError(f"Unknown noise family {family!r}; choose one of {sorted(NOISE_FAMILIES)}.")
    return NOISE_FAMILIES[family](n, tuple(shape), generator).to(device)
