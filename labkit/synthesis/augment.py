"""Batched image augmentations that make new *inputs* (their labels come from the teacher, never from here)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Blur every image of ``x`` (N×C×H×W) with its own Gaussian ``sigma`` (N,), zero padding, separable."""
    n, c, h, w = x.shape
    r = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-r.view(1, -1) ** 2 / (2 * sigma.to(x).view(-1, 1) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (N·C)×K, one kernel per image channel
    y = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4)
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def border_blur_copies(images: torch.Tensor, gen: torch.Generator, box: tuple[float, float] = (0.3, 1.0),
                       blur: tuple[float, float] = (0.5, 1.5)) -> torch.Tensor:
    """One copy of every image: a random centred box is kept (its height and width each a fraction
    ``U(box)`` of the image side), everything outside it set to black, then a Gaussian blur with
    ``sigma ~ U(blur)`` pixels; the result is clamped to [0, 1].
    """
    n, _, h, w = images.shape
    u = torch.rand(n, 3, generator=gen).to(images.device)
    half_h = (box[0] + (box[1] - box[0]) * u[:, 0]) * h / 2
    half_w = (box[0] + (box[1] - box[0]) * u[:, 1]) * w / 2
    rows = (torch.arange(h, device=images.device) - (h - 1) / 2).abs().view(1, h, 1)
    cols = (torch.arange(w, device=images.device) - (w - 1) / 2).abs().view(1, 1, w)
    keep = (rows < half_h.view(-1, 1, 1)) & (cols < half_w.view(-1, 1, 1))
    out = images * keep.unsqueeze(1).to(images)
    return gaussian_blur(out, blur[0] + (blur[1] - blur[0]) * u[:, 2]).clamp_(0, 1)
