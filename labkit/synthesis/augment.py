"""Batched image augmentations that make new *inputs* (their labels come from the teacher, never from here)."""
from __future__ import annotations

import math

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


# --------------------------------------------------------------------------- the ZSKD authors' student-side set
#: the public ZSKD training script's fixed augmentation set, per image (docs/methods/zskd.md): central zooms,
#: 20 % shifts (the vacated strip filled white), ten rotations from -90 to 90 degrees (nearest, zero fill), three
#: flips, salt-and-pepper and Gaussian-blend noise at fixed positions, and three compositions of them
ZSKD_SCALES = (0.90, 0.75, 0.60)
ZSKD_ANGLES = tuple(-90.0 + i * 20.0 for i in range(10))
ZSKD_COPIES_PER_IMAGE = 1 + 3 + 4 + 10 + 3 + 1 + 1 + 3 * 4 + 4 * 10 + 3 * 10 + 1  # 106


def _affine(x: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype).expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def central_zooms(x: torch.Tensor, scales: tuple[float, ...] = ZSKD_SCALES) -> torch.Tensor:
    """For each scale s, the central s-fraction of every image resized to the full size (bilinear); scale-major."""
    return torch.cat([_affine(x, torch.tensor([[s, 0.0, 0.0], [0.0, s, 0.0]]).to(x.device), "bilinear")
                      for s in scales])


def shifts_filled_white(x: torch.Tensor, fraction: float = 0.2) -> torch.Tensor:
    """Every image moved left, right, up and down by ``fraction`` of its side, the vacated strip filled with 1.0
    (as the authors' script fills it); direction-major."""
    h, w = x.shape[-2:]
    dx, dy = w - math.ceil((1 - fraction) * w), h - math.ceil((1 - fraction) * h)
    left, right, up, down = (torch.ones_like(x) for _ in range(4))
    left[..., :, :w - dx], right[..., :, dx:] = x[..., :, dx:], x[..., :, :w - dx]
    up[..., :h - dy, :], down[..., dy:, :] = x[..., dy:, :], x[..., :h - dy, :]
    outs = [left, right, up, down]
    return torch.cat(outs)


def rotations(x: torch.Tensor, angles: tuple[float, ...] = ZSKD_ANGLES) -> torch.Tensor:
    """Every image rotated about its centre by each angle (degrees; nearest neighbour, zero fill); angle-major."""
    outs = []
    for a in angles:
        r = math.radians(a)
        theta = torch.tensor([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0]]).to(x.device)
        outs.append(_affine(x, theta, "nearest"))
    return torch.cat(outs)


def flips(x: torch.Tensor) -> torch.Tensor:
    """Left-right, up-down and transposed copies of every image."""
    return torch.cat([x.flip(-1), x.flip(-2), x.transpose(-1, -2)])


def fixed_noise(x: torch.Tensor, seed: int = 777) -> tuple[torch.Tensor, torch.Tensor]:
    """Salt-and-pepper (0.4 % of the pixel values: a fifth white, the rest black) and a Gaussian-blend copy
    ``0.75·x + 0.0625·u``, u ~ U[0, 1): both at positions drawn once from ``seed``, the same for every image, as the
    authors' script draws them."""
    n, c, h, w = x.shape
    gen = torch.Generator().manual_seed(seed)
    salt = math.ceil(0.004 * c * h * w * 0.2)
    pepper = math.ceil(0.004 * c * h * w * 0.8)
    noisy = x.clone()
    for count, value in ((salt, 1.0), (pepper, 0.0)):
        rows = torch.randint(0, h - 1, (count,), generator=gen).to(x.device)
        cols = torch.randint(0, w - 1, (count,), generator=gen).to(x.device)
        noisy[:, :, rows, cols] = value
    u = torch.rand(1, 1, h, w, generator=gen).to(x)
    return noisy, 0.75 * x + 0.0625 * u


def zskd_authors_augmentations(x: torch.Tensor) -> torch.Tensor:
    """The authors' whole set for a batch: the images, their zooms, shifts, rotations, flips, both noises, shifted
    zooms, rotated shifts, rotated zooms and the blended salt-and-pepper copy (:data:`ZSKD_COPIES_PER_IMAGE` per
    image), clamped to [0, 1]."""
    zoomed, shifted = central_zooms(x), shifts_filled_white(x)
    pepper, blended = fixed_noise(x)
    parts = [x, zoomed, shifted, rotations(x), flips(x), pepper, blended, shifts_filled_white(zoomed),
             rotations(shifted), rotations(zoomed), fixed_noise(pepper)[1]]
    return torch.cat(parts).clamp_(0, 1)


def _copy_recipes() -> list[tuple[int, int, int, str]]:
    """Per copy number of :func:`zskd_authors_augmentations`: (scale index, shift direction, angle index, other
    operation); -1 (or "") where a stage is not applied."""
    n_s, n_a = len(ZSKD_SCALES), len(ZSKD_ANGLES)
    table: list[tuple[int, int, int, str]] = [(-1, -1, -1, "")]
    table += [(s, -1, -1, "") for s in range(n_s)] + [(-1, d, -1, "") for d in range(4)]
    table += [(-1, -1, a, "") for a in range(n_a)] + [(-1, -1, -1, f) for f in ("flip-lr", "flip-ud", "transpose")]
    table += [(-1, -1, -1, "pepper"), (-1, -1, -1, "blend")]
    table += [(c % n_s, c // n_s, -1, "") for c in range(4 * n_s)] + [(-1, c % 4, c // 4, "") for c in range(n_a * 4)]
    table += [(c % n_s, -1, c // n_s, "") for c in range(n_a * n_s)] + [(-1, -1, -1, "blend-pepper")]
    assert len(table) == ZSKD_COPIES_PER_IMAGE
    return table


_RECIPES = _copy_recipes()


def zskd_authors_picked_copies(x: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
    """The copies ``picks`` (N×K copy numbers) of the N images of ``x``, impression-major (row ``i * K + j`` is copy
    ``picks[i, j]`` of image ``i``), clamped to [0, 1]: equal to those rows of :func:`zskd_authors_augmentations`,
    built stage by stage (zoom, shift, rotation; flips and noises) for all picked rows at once, without making the
    other copies."""
    n, k = picks.shape
    if picks.numel() and not 0 <= int(picks.min()) <= int(picks.max()) < ZSKD_COPIES_PER_IMAGE:
        raise ValueError(f"copy numbers must lie in 0..{ZSKD_COPIES_PER_IMAGE - 1}")
    recipe = torch.tensor([r[:3] for r in _RECIPES], device=x.device)
    flat = picks.reshape(-1).to(x.device)
    out = x.repeat_interleave(k, dim=0)
    scale, shift, angle = recipe[flat].unbind(1)
    zoom_thetas = torch.tensor([[[s, 0.0, 0.0], [0.0, s, 0.0]] for s in ZSKD_SCALES]).to(x.device)
    rows = (scale >= 0).nonzero().squeeze(1)
    if len(rows):
        grid = F.affine_grid(zoom_thetas[scale[rows]].to(x.dtype), [len(rows), *x.shape[1:]], align_corners=False)
        out[rows] = F.grid_sample(out[rows], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    for d in range(4):
        rows = (shift == d).nonzero().squeeze(1)
        if len(rows):
            out[rows] = shifts_filled_white(out[rows]).unflatten(0, (4, -1))[d]
    rot = [[[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0]] for r in map(math.radians, ZSKD_ANGLES)]
    rows = (angle >= 0).nonzero().squeeze(1)
    if len(rows):
        theta = torch.tensor(rot).to(x.device)[angle[rows]].to(x.dtype)
        grid = F.affine_grid(theta, [len(rows), *x.shape[1:]], align_corners=False)
        out[rows] = F.grid_sample(out[rows], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    others = {"flip-lr": lambda v: v.flip(-1), "flip-ud": lambda v: v.flip(-2),
              "transpose": lambda v: v.transpose(-1, -2), "pepper": lambda v: fixed_noise(v)[0],
              "blend": lambda v: fixed_noise(v)[1], "blend-pepper": lambda v: fixed_noise(fixed_noise(v)[0])[1]}
    for kind, operation in others.items():
        copy = next(c for c, r in enumerate(_RECIPES) if r[3] == kind)
        rows = (flat == copy).nonzero().squeeze(1)
        if len(rows):
            out[rows] = operation(out[rows])
    return out.clamp_(0, 1)
