"""A small conditional VAE (CVAE) for FS-BBT's synthetic images.

The CVAE learns p(x | class) from a handful of images, where the class is the
*teacher's* argmax (the lab never sees true labels here). Two shapes:

* :class:`MLPCVAE` for small inputs (1×28×28 Fashion-MNIST/MNIST, or flat points):
  encoder ``D + C → 256 → 128 → 64 → (μ, log σ²)``, latent size 2, and a decoder
  that mirrors it ``z + C → 64 → 128 → 256 → D`` with a sigmoid output.
* :class:`ConvCVAE` for 3×32×32 (CIFAR-10): strided convolutions down to 4×4 and
  transposed convolutions back, the class given as extra constant input channels.

The loss is the VAE's negative ELBO: binary cross-entropy summed over pixels plus
the KL divergence to N(0, I), averaged over the batch (:func:`cvae_loss`).

:func:`hybrid_latents` draws FS-BBT's latents: half from N(0, I) (images that look
like the data) and half from U[−r, r]^d, which reaches the regions the prior
rarely visits and decodes to *out-of-distribution* images near class borders.
:class:`CVAESynthesizer` trains the CVAE on the few-shot images and has the box answer
its decoded images (its settings: :class:`CVAESettings`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox
from labkit.core.losses import check_finite
from labkit.core.train import adam
from labkit.synthesis.base import SynthesisResult, Synthesizer


class CVAEBase(nn.Module):
    """Shared pieces: one-hot conditioning, the reparameterisation trick, ``generate``."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.latent_dim = int(latent_dim)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """Class ids → float one-hot rows (on the labels' device)."""
        return F.one_hot(labels.long(), self.num_classes).float()

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z | x, class)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (sigmoid output) for latents ``z`` and class ids."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z = μ + σ·ε, decode; returns (reconstruction, μ, log σ²)."""
        mu, logvar = self.encode(x, labels)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, labels), mu, logvar

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Decode latents for the given classes in eval mode, batched; values clamped to [0, 1]."""
        was_training = self.training
        self.eval()
        dev = next(self.parameters()).device
        out = [self.decode(z[i:i + batch_size].to(dev), labels[i:i + batch_size].to(dev))
               for i in range(0, z.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out).clamp_(0.0, 1.0)


class MLPCVAE(CVAEBase):
    """The paper's MLP CVAE: ``D + C → 256 → 128 → 64 → (μ, log σ²)`` and a mirrored decoder."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, latent_dim: int = 2,
                 hidden: tuple[int, ...] = (256, 128, 64)) -> None:
        super().__init__(input_shape, num_classes, latent_dim)
        d = math.prod(self.input_shape)
        enc: list[nn.Module] = []
        prev = d + num_classes
        for h in hidden:
            enc += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            prev = h
        self.encoder = nn.Sequential(*enc)
        self.to_mu = nn.Linear(prev, latent_dim)
        self.to_logvar = nn.Linear(prev, latent_dim)
        dec: list[nn.Module] = []
        prev = latent_dim + num_classes
        for h in reversed(hidden):
            dec += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            prev = h
        dec += [nn.Linear(prev, d), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([x.flatten(1), self.one_hot(labels)], 1))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.decoder(torch.cat([z, self.one_hot(labels)], 1))
        return out.view(z.shape[0], *self.input_shape)


class ConvCVAE(CVAEBase):
    """A convolutional CVAE for 3×32×32 images: 32 → 16 → 8 → 4 and back, class as extra channels."""

    def __init__(self, input_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10, latent_dim: int = 2,
                 width: int = 32) -> None:
        super().__init__(input_shape, num_classes, latent_dim)
        c, h, w = self.input_shape
        if h % 8 or w % 8:
            raise ValueError(f"ConvCVAE needs a height and width divisible by 8, got {h}×{w}")
        self.side = (h // 8, w // 8)
        w1, w2, w3 = width, 2 * width, 4 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(c + num_classes, w1, 4, 2, 1), nn.BatchNorm2d(w1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w1, w2, 4, 2, 1), nn.BatchNorm2d(w2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w2, w3, 4, 2, 1), nn.BatchNorm2d(w3), nn.LeakyReLU(0.2, inplace=True),
        )
        flat = w3 * self.side[0] * self.side[1]
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim + num_classes, flat), nn.ReLU(inplace=True))
        self.w3 = w3
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(w3, w2, 4, 2, 1), nn.BatchNorm2d(w2), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w2, w1, 4, 2, 1), nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w1, c, 4, 2, 1), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = self.one_hot(labels)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        h = self.encoder(torch.cat([x, onehot], 1)).flatten(1)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(torch.cat([z, self.one_hot(labels)], 1))
        return self.decoder(h.view(z.shape[0], self.w3, *self.side))


def build_cvae(input_shape: tuple[int, ...], num_classes: int, latent_dim: int = 2) -> CVAEBase:
    """The CVAE that suits an input shape: conv for 3-channel images of side ≥ 32, else the MLP."""
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[0] == 3 and shape[1] >= 32 and shape[1] % 8 == 0 and shape[2] % 8 == 0:
        return ConvCVAE(shape, num_classes, latent_dim)
    return MLPCVAE(shape, num_classes, latent_dim)


def cvae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per image: BCE summed over pixels + KL(q(z|x,c) ‖ N(0, I)), averaged over the batch."""
    n = x.shape[0]
    bce = F.binary_cross_entropy(recon.float().flatten(1), x.float().flatten(1), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kl) / n


@dataclass
class CVAETrainResult:
    """Per-epoch mean loss of :func:`train_cvae` and its wall time."""

    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        """The last epoch's mean loss (nan if no epoch ran)."""
        return self.history[-1]["loss"] if self.history else float("nan")


def train_cvae(model: CVAEBase, x: torch.Tensor, labels: torch.Tensor, *, epochs: int = 50, batch_size: int = 64,
               lr: float = 1e-3, seed: int = 0, progress: bool = True, desc: str = "CVAE") -> CVAETrainResult:
    """Fit the CVAE on ``(x, labels)`` (tensors on the model's device) with Adam; returns the loss history."""
    import time

    if x.shape[0] != labels.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {labels.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError("train_cvae() got no images")
    dev = next(model.parameters()).device
    x, labels = x.to(dev), labels.to(dev)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the reparameterisation noise
    opt = adam(model.parameters(), lr=lr)
    n = x.shape[0]
    result = CVAETrainResult()
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen).to(dev)
        total, seen = 0.0, 0
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            recon, mu, logvar = model(x[idx], labels[idx])
            loss = cvae_loss(recon, x[idx], mu, logvar)
            check_finite(loss, f"CVAE loss (epoch {epoch})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.shape[0]
            seen += idx.shape[0]
        result.history.append({"epoch": epoch, "loss": total / seen})
        bar.set_postfix(loss=f"{total / seen:.1f}")
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def hybrid_latents(n: int, latent_dim: int = 2, *, ood_fraction: float = 0.5, ood_range: float = 3.0,
                   generator: torch.Generator | None = None, device: torch.device | str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """FS-BBT's latent mix: ``n`` latents, a share ``ood_fraction`` from U[−r, r]^d, the rest from N(0, I).

    Returns ``(z, is_ood)``; the out-of-distribution rows come last.
    """
    if not 0.0 <= ood_fraction <= 1.0:
        raise ValueError("ood_fraction must lie in [0, 1]")
    n_ood = int(round(n * ood_fraction))
    z_in = torch.randn(n - n_ood, latent_dim, generator=generator)
    z_ood = (torch.rand(n_ood, latent_dim, generator=generator) * 2 - 1) * ood_range
    z = torch.cat([z_in, z_ood])
    is_ood = torch.cat([torch.zeros(n - n_ood, dtype=torch.bool), torch.ones(n_ood, dtype=torch.bool)])
    if device is not None:
        z, is_ood = z.to(device), is_ood.to(device)
    return z, is_ood


def balanced_classes(n: int, num_classes: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` class ids cycling 0, 1, …, C−1 (as even as possible)."""
    return torch.arange(n, device=device) % num_classes


def latent_grid(steps: int = 10, span: float = 3.0, device: torch.device | str | None = None) -> torch.Tensor:
    """A ``steps×steps`` grid of 2-D latents over [−span, span]², row-major, top row = largest z₂."""
    axis = torch.linspace(-span, span, steps, device=device)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.flatten(), z2.flatten()], 1)


@dataclass(frozen=True)
class CVAESettings:
    """How :class:`CVAESynthesizer` trains its CVAE and draws its latents."""

    epochs: int = 50  # CVAE training epochs
    batch_size: int = 128
    lr: float = 3e-3
    latent_dim: int = 2
    ood_fraction: float = 0.5  # share of latents from U[-r, r]^d (out of distribution), the rest from N(0, I)
    ood_range: float = 3.0  # r


class CVAESynthesizer(Synthesizer):
    """A CVAE trained on ``images`` (conditioned on the teacher's argmax of ``answers``) decodes new images, which the
    box answers in one call (phase ``phase``).

    The CVAE is trained on the first :meth:`synthesize` call (global seed ``seed + 1`` for its weights, ``seed``
    for its training). ``synthesize(n)`` decodes ``n`` images from :func:`hybrid_latents` drawn from ``generator``
    (the method's, so its draws stay in the method's order), classes cycling through all; ``extras`` holds the
    ``model``, its loss ``history``, the ``latents``, ``is_ood`` and ``classes``. :meth:`nothing` is the result of
    an ingredient that is off (no CVAE is trained).
    """

    def __init__(self, box: BlackBox, images: torch.Tensor, answers: torch.Tensor, settings: CVAESettings,
                 num_classes: int, *, generator: torch.Generator, seed: int = 0, phase: str = "cvae",
                 desc: str = "CVAE") -> None:
        super().__init__(box, seed, device=images.device)
        self.images, self.answers, self.settings, self.num_classes = images, answers, settings, num_classes
        self.generator, self.phase, self.desc = generator, phase, desc
        self.model: CVAEBase | None = None
        self.history: list[dict[str, float]] = []

    def _train(self, progress: bool) -> CVAEBase:
        s, dev = self.settings, self.images.device
        torch.manual_seed(self.seed + 1)
        model = build_cvae(tuple(self.images.shape[1:]), self.num_classes, s.latent_dim).to(dev)
        trained = train_cvae(model, self.images, self.answers.argmax(1), epochs=s.epochs, batch_size=s.batch_size,
                             lr=s.lr, seed=self.seed, progress=progress, desc=self.desc)
        self.model, self.history = model, trained.history
        return model

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        s, dev = self.settings, self.images.device
        model = self.model if self.model is not None else self._train(progress)
        z, is_ood = hybrid_latents(n, s.latent_dim, ood_fraction=s.ood_fraction, ood_range=s.ood_range,
                                   generator=self.generator, device=dev)
        y = balanced_classes(n, self.num_classes, device=dev)
        x = model.generate(z, y)
        with self.box.phase(self.phase):
            answers = self.box(x)
        return SynthesisResult(x, answers, extras={"model": model, "history": self.history, "latents": z,
                                                   "is_ood": is_ood, "classes": y})

    def nothing(self) -> SynthesisResult:
        """No CVAE image: empty images, answers, latents and classes, no model, no query."""
        dev = self.images.device
        return SynthesisResult(self.images[:0], self.answers[:0], extras={
            "model": None, "history": [], "latents": torch.zeros(0, self.settings.latent_dim, device=dev),
            "is_ood": torch.zeros(0, dtype=torch.bool, device=dev), "classes": torch.zeros(0, dtype=torch.long,
                                                                                          device=dev)})


@torch.no_grad()
def manifold_class_share(cvae: CVAEBase, box: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                         steps: int = 8, span: float = 2.0) -> torch.Tensor:
    """For each class c: the share of the decoder's ``steps×steps`` grid over [−span, span]² (conditioned on c) that
    the teacher files under c. ``box`` is asked once, for every class's grid together (``steps²·C`` queries)."""
    dev = next(cvae.parameters()).device
    z = latent_grid(steps, span, device=dev)
    classes = torch.arange(num_classes, device=dev).repeat_interleave(z.shape[0])
    images = cvae.generate(z.repeat(num_classes, 1), classes)
    answer = box(images).to(dev)
    top = answer.argmax(1) if answer.dim() == 2 else answer
    return (top == classes).float().view(num_classes, -1).mean(1).cpu()
