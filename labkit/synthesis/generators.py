"""Small generators and discriminators for MEKD (mapping-emulation KD).

:class:`ResponseGenerator` is a DCGAN-style network that maps a C-dimensional
*response vector* (C = number of classes) to an input of the teacher. For images
it is

    centre(z) → Linear(C → w·s·s) → BN → LeakyReLU → reshape w×s×s
              → upsample ×2 → Conv 3×3 (w → w/2) → BN → LeakyReLU
              → upsample ×2 → Conv 3×3 (w/2 → channels) → sigmoid

with s = H/4 (7 for 28×28 Fashion-MNIST, 8 for 32×32 CIFAR-10), so the output has
the data's shape directly (no crop or resize). The sigmoid keeps pixels in [0, 1],
the range the :class:`~labkit.core.blackbox.BlackBox` accepts.

**Centred input.** A logit vector is defined only up to an additive constant (softmax
ignores it), so the generator subtracts the mean over classes from its input first:
``G(z) == G(z + c·1)``. Log-probabilities (a score box) and logits therefore generate
the same image.

For 2-D toy data (``toy2d-*``) :func:`build_generator` returns a small MLP with a
sigmoid output instead, so the method also runs on points in [0, 1]².

:class:`Discriminator` has two heads, as in an auxiliary-classifier GAN: ``real/fake``
(one logit) and ``classes`` (C logits), the latter trained to imitate the teacher's
answers so that the generator can be pushed towards images the teacher is confident
about without back-propagating through the black box.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.data import DatasetInfo


def centre_responses(z: torch.Tensor) -> torch.Tensor:
    """Subtract each row's mean: logits are defined only up to an additive constant."""
    return z - z.mean(dim=1, keepdim=True)


#: G's and D's layouts: ``lab`` (two convs each, D with a class head) and ``authors`` (the authors' DCGAN.py: G with
#: three convs, D with four strided blocks with dropout; BatchNorm eps 0.8 and N(0, 0.02) weights as there)
GAN_LAYOUTS: tuple[str, ...] = ("lab", "authors")


def _check_layout(layout: str) -> str:
    if layout not in GAN_LAYOUTS:
        raise ValueError(f"GAN layout must be one of {', '.join(GAN_LAYOUTS)}; got {layout!r}")
    return layout


def _authors_init(module: nn.Module) -> None:
    """The authors' initialisation: conv weights N(0, 0.02), BatchNorm2d scales N(1, 0.02) and shifts 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ResponseGenerator(nn.Module):
    """DCGAN-style G: a C-dimensional response vector → an image in [0, 1] of shape ``image_shape``.

    ``layout="authors"``: Linear(C → w·s·s) → BN → upsample → Conv 3×3 (w → w) → BN → LeakyReLU → upsample →
    Conv 3×3 (w → w/2) → BN → LeakyReLU → Conv 3×3 (w/2 → channels) → sigmoid (the authors' tanh, moved to the
    box's [0, 1] range); the authors' width is 128."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], width: int = 64,
                 layout: str = "lab") -> None:
        super().__init__()
        channels, height, width_px = image_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"ResponseGenerator needs image sides divisible by 4, got {height}×{width_px}")
        if width < 2:
            raise ValueError("generator width must be at least 2")
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.layout = _check_layout(layout)
        self.base = (width, height // 4, width_px // 4)
        up = nn.Upsample(scale_factor=2, mode="nearest")
        if layout == "authors":
            self.project = nn.Sequential(nn.Linear(num_classes, width * self.base[1] * self.base[2]))
            self.decode = nn.Sequential(
                nn.BatchNorm2d(width), up,
                nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width, 0.8), nn.LeakyReLU(0.2, inplace=True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2, 0.8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(width // 2, channels, 3, padding=1), nn.Sigmoid(),
            )
            _authors_init(self)
            return
        self.project = nn.Sequential(
            nn.Linear(num_classes, width * self.base[1] * self.base[2]),
            nn.BatchNorm1d(width * self.base[1] * self.base[2]),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.decode = nn.Sequential(
            up,
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.BatchNorm2d(width // 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width // 2, channels, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N×C×H×W in [0, 1]) for response vectors ``z`` (N×num_classes)."""
        if z.dim() != 2 or z.shape[1] != self.num_classes:
            raise ValueError(f"the generator expects response vectors of shape (N, {self.num_classes}), "
                             f"got {tuple(z.shape)}")
        h = self.project(centre_responses(z))
        return self.decode(h.view(-1, *self.base))


class VectorGenerator(nn.Module):
    """MLP G for non-image data: a C-dimensional response vector → a point in [0, 1]^d."""

    def __init__(self, num_classes: int, out_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_shape = (out_features,)
        self.net = nn.Sequential(
            nn.Linear(num_classes, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, out_features), nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Points (N×d in [0, 1]) for response vectors ``z`` (N×num_classes)."""
        if z.dim() != 2 or z.shape[1] != self.num_classes:
            raise ValueError(f"the generator expects response vectors of shape (N, {self.num_classes}), "
                             f"got {tuple(z.shape)}")
        return self.net(centre_responses(z))


class Discriminator(nn.Module):
    """D with a real/fake head and an auxiliary class head (used by the class-head and teacher-imitation terms).

    Images, ``layout="lab"``: Conv 4×4 s2 (c → w) → LeakyReLU → Conv 4×4 s2 (w → 2w) → BN → LeakyReLU →
    flatten → two linear heads. ``layout="authors"``: four blocks Conv 3×3 s2 (c → w → 2w → 4w → 8w) →
    LeakyReLU → Dropout2d(0.25) (→ BN from the second block on); the authors' w is 16. Vectors: a two-layer MLP.
    """

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 32, layout: str = "lab") -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.layout = _check_layout(layout)
        if len(input_shape) == 3 and layout == "authors":
            c = input_shape[0]
            blocks: list[nn.Module] = []
            for i, (cin, cout) in enumerate(zip((c, width, 2 * width, 4 * width), (width, 2 * width, 4 * width,
                                                                                     8 * width))):
                blocks += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
                if i:
                    blocks.append(nn.BatchNorm2d(cout, 0.8))
            self.trunk = nn.Sequential(*blocks, nn.Flatten())
            with torch.no_grad():
                features = int(self.trunk.eval()(torch.zeros(1, *input_shape)).shape[1])
            self.trunk.train()
            _authors_init(self)
        elif len(input_shape) == 3:
            c, h, w = input_shape
            self.trunk = nn.Sequential(
                nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, inplace=True),
                nn.Flatten(),
            )
            features = 2 * width * (h // 4) * (w // 4)
        else:
            d = int(math.prod(input_shape))
            self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(d, 4 * width), nn.LeakyReLU(0.2, inplace=True),
                                       nn.Linear(4 * width, 4 * width), nn.LeakyReLU(0.2, inplace=True))
            features = 4 * width
        self.real_fake = nn.Linear(features, 1)
        self.classes = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(real/fake logit (N), class logits (N×C))``."""
        h = self.trunk(x)
        return self.real_fake(h).squeeze(1), self.classes(h)


#: how :meth:`LatentGenerator.reset_parameters` initialises: PyTorch's defaults, or the IDEAL public code's
GENERATOR_INITS = ("pytorch", "authors")


#: the 3×3 kernel's rows (or columns) that reach each of the 4 taps of the equivalent stride-2 transposed convolution
_UPSAMPLE_TAPS = ((0.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0))


class UpsampleConv2d(nn.Conv2d):
    """Nearest ×2 upsampling followed by a 3×3 convolution (padding 1), computed as one stride-2 transposed
    convolution with a 4×4 kernel built from the 3×3 one: the same function and the same parameters, 16 instead of
    36 multiply-adds per input pixel and channel pair, and no upsampled tensor (``docs/speed.md``)."""

    taps: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, bias=bias)
        # built once and moved with the module (not in the state dict: the parameters are the 3×3 conv's alone)
        self.register_buffer("taps", torch.tensor(_UPSAMPLE_TAPS), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``conv3x3(upsample_nearest_2x(x))`` for ``x`` (N×C×H×W) → N×C'×2H×2W."""
        taps = self.taps.to(self.weight.dtype)
        kernel = torch.einsum("ay,oiyx,bx->ioab", taps, self.weight, taps)
        return F.conv_transpose2d(x, kernel, self.bias, stride=2, padding=1)


def _upsample_conv(in_channels: int, out_channels: int, fused: bool) -> list[nn.Module]:
    """Nearest ×2 upsampling and a bias-free 3×3 convolution: one fused layer, or the two as written."""
    if fused:
        return [UpsampleConv2d(in_channels, out_channels, bias=False)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]


class LatentGenerator(nn.Module):
    """IDEAL's generator: a latent vector z (``nz`` values) → an image in [0, 1].

    Linear(nz → 2w·s·s) → reshape → BN → upsample ×2 → Conv 3×3 (2w → 2w) → BN → LeakyReLU → upsample ×2
    → Conv 3×3 (2w → w) → BN → LeakyReLU → Conv 3×3 (w → channels) → sigmoid, with s = H/4. ``fused_upsample``:
    each upsample and the convolution after it run as one :class:`UpsampleConv2d` (the same function and
    parameters, fewer multiply-adds; the last bits differ).
    """

    def __init__(self, nz: int, image_shape: tuple[int, int, int], width: int = 64,
                 fused_upsample: bool = False) -> None:
        super().__init__()
        channels, height, width_px = image_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"LatentGenerator needs image sides divisible by 4, got {height}×{width_px}")
        self.nz = nz
        self.image_shape = tuple(image_shape)
        self.base = (2 * width, height // 4, width_px // 4)
        self.project = nn.Linear(nz, 2 * width * self.base[1] * self.base[2])
        self.decode = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            *_upsample_conv(2 * width, 2 * width, fused_upsample), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2, inplace=True),
            *_upsample_conv(2 * width, width, fused_upsample), nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N×C×H×W in [0, 1]) for latent vectors ``z`` (N×nz)."""
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(f"the generator expects latent vectors of shape (N, {self.nz}), got {tuple(z.shape)}")
        return self.decode(self.project(z).view(-1, *self.base))

    def reset_parameters(self, init: str = "pytorch") -> None:
        """Re-initialise every layer (IDEAL starts each round from a fresh generator): PyTorch's defaults, or
        ``"authors"``, the public code's ``reset_model``: weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
        if init not in GENERATOR_INITS:
            raise ValueError(f"unknown generator initialisation {init!r}; choose one of {GENERATOR_INITS}")
        for m in self.modules():
            reset = getattr(m, "reset_parameters", None)
            if m is not self and callable(reset):
                reset()
        if init == "authors":
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d, nn.BatchNorm2d)):
                    nn.init.normal_(m.weight, 1.0 if isinstance(m, nn.BatchNorm2d) else 0.0, 0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)


def build_generator(info: DatasetInfo, width: int = 64, layout: str = "lab") -> nn.Module:
    """The generator for a data set: :class:`ResponseGenerator` (``layout``: lab or authors) for images,
    :class:`VectorGenerator` otherwise."""
    if info.is_image:
        return ResponseGenerator(info.num_classes, tuple(info.image_shape), width, layout)  # type: ignore[arg-type]
    _check_layout(layout)
    return VectorGenerator(info.num_classes, int(math.prod(info.image_shape)), hidden=width)


def build_discriminator(info: DatasetInfo, width: int = 32, layout: str = "lab") -> Discriminator:
    """The two-headed discriminator for a data set's input shape (``layout``: lab or authors)."""
    return Discriminator(info.num_classes, tuple(info.image_shape), width, layout)


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode with ``requires_grad=False`` on every parameter (gradients reach its input)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def one_hot_responses(classes: torch.Tensor | list[int], num_classes: int, scale: float = 1.0,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Response vectors ``scale·e_k`` for class ids ``classes`` (what "G of a one-hot vector" means)."""
    idx = torch.as_tensor(classes, dtype=torch.long, device=device)
    return torch.nn.functional.one_hot(idx, num_classes).float() * scale


def interpolate_responses(a: int, b: int, num_classes: int, steps: int = 8, scale: float = 1.0,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """``steps`` response vectors on the straight line from ``scale·e_a`` to ``scale·e_b``."""
    ends = one_hot_responses([a, b], num_classes, scale, device)
    alpha = torch.linspace(0, 1, steps, device=ends.device).unsqueeze(1)
    return (1 - alpha) * ends[0] + alpha * ends[1]
