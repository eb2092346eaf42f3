"""The lab's architectures, built by name (each paper's teacher and student networks).

``lenet5`` / ``lenet5-half``          ZSKD / FS-BBT LeNet-5 (32×32 input; 28×28 is padded by 2).
``lenet5-db3`` / ``lenet5-db3-half``  DB3KD LeNet-5 (28×28 input).
``ideal-cnn``                        IDEAL's public-code MNIST CNN, teacher and student alike (BatchNorm).
``alexnet`` / ``alexnet-half``        CIFAR-10 AlexNet of ZSKD / FS-BBT.
``resnet8`` / ``resnet20`` / ``resnet32``  CIFAR-style ResNets (16/32/64 channels).
``mlp``                              a small MLP for 2-D toy data.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.errors import UnknownNameError

if TYPE_CHECKING:  # data imports nothing from here, but keep the model zoo importable on its own
    from labkit.core.data import DatasetInfo

ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make a model factory available to :func:`build_model` under ``name``."""
    def deco(fn: ModelFactory) -> ModelFactory:
        MODELS[name] = fn
        return fn
    return deco


def build_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Build an architecture by registry name for the given input channels, classes and image size."""
    key = name.strip().lower().replace("_", "-")
    if key not in MODELS:
        raise UnknownNameError("model", name, list(MODELS))
    return MODELS[key](in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LeNet5(nn.Module):
    """LeNet-5 with configurable widths; pads 28×28 inputs to 32×32 when ``pad_to_32``."""

    def __init__(self, in_channels: int, num_classes: int, conv: tuple[int, int], fc: tuple[int, ...],
                 image_size: int, pad_to_32: bool) -> None:
        super().__init__()
        self.pad = (32 - image_size) // 2 if pad_to_32 and image_size < 32 else 0
        size = image_size + 2 * self.pad
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, conv[0], 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(conv[0], conv[1], 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = ((size - 4) // 2 - 4) // 2
        dims = (conv[1] * side * side, *fc)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-1], num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model("lenet5")
def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """ZSKD / FS-BBT LeNet-5: conv 6/16, FC 120-84 (61.7k parameters on MNIST)."""
    return LeNet5(in_channels, num_classes, (6, 16), (120, 84), image_size, pad_to_32=True)


@register_model("lenet5-half")
def lenet5_half(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """ZSKD / FS-BBT LeNet-5-half: conv 3/8, FC 120-84 (35.8k parameters)."""
    return LeNet5(in_channels, num_classes, (3, 8), (120, 84), image_size, pad_to_32=True)


@register_model("lenet5-db3")
def lenet5_db3(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """DB3KD LeNet-5: conv 20/50, FC 800-200 (188k parameters)."""
    return LeNet5(in_channels, num_classes, (20, 50), (200,), image_size, pad_to_32=False)


@register_model("lenet5-db3-half")
def lenet5_db3_half(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """DB3KD LeNet-5-half: conv 10/25, FC 400-100 (47.6k parameters)."""
    return LeNet5(in_channels, num_classes, (10, 25), (100,), image_size, pad_to_32=False)


@register_model("ideal-cnn")
def ideal_cnn(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """IDEAL's public-code CNN (its ``lenet`` for MNIST-like data): conv 16@5×5 + BN + pool, conv 32@5×5 + BN + pool,
    FC to the classes (29.0k parameters for 28×28, ten classes)."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * side * side, num_classes))


class AlexNetCifar(nn.Module):
    """The small AlexNet used for CIFAR-10 by ZSKD and FS-BBT."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], fc: tuple[int, int],
                 image_size: int = 32) -> None:
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), nn.BatchNorm2d(w1),
            nn.Conv2d(w1, w2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), nn.BatchNorm2d(w2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w3, w4, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w4, w5, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        )
        side = image_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w5 * side * side, fc[0]), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.BatchNorm1d(fc[0]),
            nn.Linear(fc[0], fc[1]), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.BatchNorm1d(fc[1]),
            nn.Linear(fc[1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("alexnet")
def alexnet(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """CIFAR-10 AlexNet: conv 48/128/192/192/128, FC 512-256."""
    return AlexNetCifar(in_channels, num_classes, (48, 128, 192, 192, 128), (512, 256), image_size)


@register_model("alexnet-half")
def alexnet_half(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """CIFAR-10 AlexNet-half: conv 24/64/96/96/64, FC 256-128."""
    return AlexNetCifar(in_channels, num_classes, (24, 64, 96, 96, 64), (256, 128), image_size)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.extra:  # parameter-free "option A" shortcut: zero-pad the new channels
            short = F.pad(short, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2) with 16/32/64 channels."""

    def __init__(self, depth: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


for _depth in (8, 20, 32):
    def _make(depth: int) -> ModelFactory:
        def factory(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
            return CifarResNet(depth, in_channels, num_classes)
        factory.__doc__ = f"CIFAR-style ResNet-{depth}."
        return factory
    register_model(f"resnet{_depth}")(_make(_depth))


class MLP(nn.Module):
    """A small MLP for 2-D points."""

    def __init__(self, in_features: int, num_classes: int, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        dims = (in_features, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(dims[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


@register_model("mlp")
def mlp(in_channels: int = 2, num_classes: int = 3, image_size: int = 0) -> nn.Module:
    """MLP 2 → 64 → 64 → C for toy2d data (``in_channels`` is the input dimension)."""
    return MLP(in_channels, num_classes)


@register_model("mlp-small")
def mlp_small(in_channels: int = 2, num_classes: int = 3, image_size: int = 0) -> nn.Module:
    """MLP 2 → 16 → C: a weak student for toy2d data."""
    return MLP(in_channels, num_classes, (16,))


def model_for(name: str, info: DatasetInfo) -> nn.Module:
    """Build ``name`` sized for a :class:`~labkit.core.data.DatasetInfo`."""
    if info.is_image:
        c, h, _ = info.image_shape
        return build_model(name, c, info.num_classes, h)
    return build_model(name, info.image_shape[0], info.num_classes, 0)
