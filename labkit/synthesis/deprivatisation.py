"""MEKD's generator side: the response modes, the edge subset, the GAN ("deprivatisation") and G's samples.

**Response modes.** In ``soft`` mode the box answers probability vectors (a *score* box); in
``hard`` mode only class ids (a *decision* box). :func:`require_box` refuses a box at any other
level and :func:`ask_within_mode` checks every answer, so hard mode never sees a probability.

**Deprivatisation** (:func:`train_generator`). A DCGAN-style generator G
(:mod:`labkit.synthesis.generators`) learns to map a C-dimensional response vector z ~ N(0, I_C) to an
image, emulating the inverse of the teacher T. Its discriminator D sees the *unlabeled* edge
subset (:func:`edge_subset`: a seeded random share of the training images, no labels). A black
box cannot be back-propagated through, so the teacher's answer can only weight a term or train D's second
head, D_cls. Four versions (``deprivatisation``):

* ``"paper-text"`` (the paper's text) and ``"authors-code"`` (the authors' ``DCGAN.py`` as written): D has one
  real/fake output; G's loss gains 0.5·mean(−w·log D(G(z))) with w the teacher's top probability (paper text;
  1 for a class id in hard mode) or its top class *index* (the code, so class 0 weighs nothing). Nothing ties z
  to a class.
* ``"class-head"`` (a lab variant: an earlier misreading of the authors' code, kept named): ŷ = the teacher's
  top class on G(z); D_cls and G both minimise 0.5·CE(D_cls(G(z)), ŷ). Nothing ties z to a class either.
* ``"teacher-imitation"`` (a lab addition): D_cls is fitted to the teacher's *answers* on every
  fresh G(z) (soft cross-entropy on probabilities, cross-entropy on class ids), and G minimises
  λ·CE(D_cls(G(z)), argmax z) with λ = 1, so z plays the role of a logit vector of T.

In every version only G's samples are sent to the teacher (every step, a fresh batch), never the edge
images, and every image sent is counted in the phase ``deprivatisation: G(z)``. The share of G(z)
on which T's top class equals argmax z (``teacher_agrees``) and, in soft mode, T's mean top
probability (``teacher_confidence``) are logged per epoch from those same queries.

Settings: Adam 2e-4, β = (0.5, 0.999), batch 64 (the paper's).

:class:`GeneratorSynthesizer` draws fresh z from a frozen G and has the box answer G(z)
(phase ``distillation: G(z)``): MEKD's generated transfer images.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox, autocast_for
from labkit.core.data import DatasetInfo
from labkit.core.errors import AccessDenied, ConfigError, UnknownNameError
from labkit.core.losses import check_finite
from labkit.core.train import adam
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer
from labkit.synthesis.generators import (
    GAN_LAYOUTS,
    build_discriminator,
    build_generator,
    freeze,
    one_hot_responses,
)

RESPONSES: tuple[str, ...] = ("soft", "hard")
#: the generator's information term: ``paper-text`` (the paper's text: G's fool term weighted by the teacher's top
#: probability), ``authors-code`` (the authors' DCGAN.py as written: the teacher's class index times log D(G(z)), for
#: G only), ``class-head`` (a lab variant, the lab's earlier misreading of that code: a class head on D, CE on the
#: teacher's top class for D and G) and ``teacher-imitation`` (a lab addition)
DEPRIVATISATION_LOSSES: tuple[str, ...] = ("class-head", "teacher-imitation", "authors-code", "paper-text")
#: the information term's weight when the config leaves it open
DEFAULT_INFO_WEIGHT: dict[str, float] = {"class-head": 0.5, "teacher-imitation": 1.0, "authors-code": 0.5,
                                         "paper-text": 0.5}
#: the terms that use D's real/fake output only (D's class head is left untrained)
REAL_FAKE_ONLY = ("authors-code", "paper-text")
#: the box access each response mode is built on
BOX_ACCESS: dict[str, str] = {"soft": "score", "hard": "decision"}


def check_response(response: str) -> str:
    """Normalise ``soft``/``hard``; anything else raises :class:`UnknownNameError`."""
    key = str(response).strip().lower()
    if key not in RESPONSES:
        raise UnknownNameError("MEKD response", response, RESPONSES)
    return key


def require_box(box: BlackBox | None, response: str) -> BlackBox:
    """The box must answer at exactly the level the response mode allows (hard: decisions only)."""
    want = BOX_ACCESS[response]
    if box is None:
        raise AccessDenied(f"MEKD with {response} responses needs a {want} box; got none.")
    if box.access != want:
        raise AccessDenied(
            f"MEKD with {response} responses must be given a {want!r} box, got a {box.access!r} box. "
            + ("Hard mode must never see probabilities: build BlackBox(teacher, access='decision')."
               if response == "hard"
               else "Soft mode uses the teacher's probabilities: build BlackBox(teacher, access='score').")
        )
    return box


def ask_within_mode(box: BlackBox, x: torch.Tensor, response: str) -> torch.Tensor:
    """Query the box and check the answer is what the mode may see (class ids in hard mode)."""
    out = box(x)
    if response == "hard" and (out.dtype != torch.int64 or out.dim() != 1):
        raise AccessDenied("hard-mode MEKD received something other than class ids; it must never see probabilities")
    return out


def edge_subset(unlabeled: torch.Tensor | None, fraction: float, seed: int) -> torch.Tensor:
    """A seeded random ``fraction`` of the unlabeled images: the edge side's private data."""
    if unlabeled is None or unlabeled.shape[0] == 0:
        raise ConfigError("MEKD and kd-edge need unlabeled training images (data_access='unlabeled')")
    n = max(1, int(round(unlabeled.shape[0] * fraction)))
    idx = torch.randperm(unlabeled.shape[0], generator=torch.Generator().manual_seed(seed + 7919))[:n]
    return unlabeled[idx.to(unlabeled.device)]


@dataclass(frozen=True)
class GANSettings:
    """How :func:`train_generator` trains G and D (Adam, batch and betas: the paper's)."""

    gan_epochs: int  # passes over the edge subset
    g_width: int  # generator channels at the lowest resolution
    d_width: int  # discriminator channels of its first conv
    gan_batch: int = 64
    gan_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    deprivatisation: str = "teacher-imitation"  # the information term: one of DEPRIVATISATION_LOSSES
    info_weight: float | None = None  # its weight λ (None: DEFAULT_INFO_WEIGHT of the term)
    display_scale: float = 3.0  # one-hot responses are scaled by this for the snapshots
    precision: str = "fp32"  # G's and D's steps: fp32, or bf16 autocast (the run's precision="bf16")
    gan_layout: str = "lab"  # G's and D's layers: lab, or authors (their DCGAN.py; generators.GAN_LAYOUTS)

    def __post_init__(self) -> None:
        if self.deprivatisation not in DEPRIVATISATION_LOSSES:
            raise UnknownNameError("MEKD deprivatisation loss", self.deprivatisation, DEPRIVATISATION_LOSSES)
        if self.gan_layout not in GAN_LAYOUTS:
            raise UnknownNameError("MEKD GAN layout", self.gan_layout, GAN_LAYOUTS)


@dataclass
class Deprivatisation:
    """A trained generator and discriminator, with what happened on the way."""

    generator: nn.Module
    discriminator: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    seconds: float = 0.0
    edge_size: int = 0


def _aux_loss(class_logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Fit D's class head to the teacher's answers: CE on class ids, soft CE on probabilities."""
    if answers.dtype == torch.int64:
        return F.cross_entropy(class_logits, answers)
    return -(answers * F.log_softmax(class_logits, dim=1)).sum(1).mean()


def information_weight(answers: torch.Tensor, response: str, term: str) -> torch.Tensor:
    """Per-image weight of the ``authors-code`` / ``paper-text`` term: the teacher's top class *index* (the authors'
    code, so class 0 weighs nothing) or its top probability (1 for a class id in hard mode)."""
    top = answers if response == "hard" else answers.argmax(1)
    if term == "authors-code":
        return top.float()
    return torch.ones_like(top, dtype=torch.float32) if response == "hard" else answers.max(1).values.float()


def inverse_emulation(box: BlackBox, generator: nn.Module, num_classes: int, response: str, n: int, *,
                      seed: int = 0, phase: str = "inverse check: G(z)") -> dict[str, float]:
    """How well G emulates the teacher's inverse, on ``n`` fresh z (counted queries, their own phase): the share of
    G(z) the teacher labels argmax z, and, in soft mode, the mean KL(softmax(z) ‖ T(G(z)))."""
    z = torch.randn(n, num_classes, generator=torch.Generator().manual_seed(seed + 65537))
    device = next(generator.parameters()).device
    generator.eval()
    with torch.no_grad():
        images = generator(z.to(device))
    with box.phase(phase):
        answers = ask_within_mode(box, images, response)
    top = answers if response == "hard" else answers.argmax(1)
    out = {"agreement_with_argmax_z": float((top.cpu() == z.argmax(1)).float().mean()), "images": float(n)}
    if response == "soft":
        p = torch.softmax(z, 1).to(answers.device)
        out["kl_softmax_z_to_teacher"] = float((p * (p.log() - answers.clamp_min(1e-12).log())).sum(1).mean())
    return out


def train_generator(box: BlackBox, edge_images: torch.Tensor, num_classes: int, settings: GANSettings, *,
                    response: str = "soft", info: DatasetInfo, device: torch.device | None = None,
                    seed: int = 0, progress: bool = True) -> Deprivatisation:
    """Deprivatisation: train G and D on the unlabeled edge images, as ``settings`` (the :class:`GANSettings`) says.

    ``info`` is the data set's :class:`~labkit.core.data.DatasetInfo` (for the architectures).
    Only generated images are sent to the teacher (phase ``deprivatisation: G(z)``); the edge
    images are seen by D alone.
    """
    response = check_response(response)
    require_box(box, response)
    class_head = settings.deprivatisation == "class-head"
    weight = DEFAULT_INFO_WEIGHT[settings.deprivatisation] if settings.info_weight is None \
        else float(settings.info_weight)
    device = device or box.device
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    # channels-last G and D: 1.2x per step on two CPU cores (docs/speed.md); the same numbers within rounding
    G = build_generator(info, settings.g_width, settings.gan_layout).to(device).to(memory_format=torch.channels_last)
    D = build_discriminator(info, settings.d_width, settings.gan_layout).to(device).to(
        memory_format=torch.channels_last)
    opt_g = adam(G.parameters(), lr=settings.gan_lr, betas=(settings.beta1, settings.beta2))
    opt_d = adam(D.parameters(), lr=settings.gan_lr, betas=(settings.beta1, settings.beta2))
    x_edge = edge_images.to(device)
    if x_edge.dim() == 4:
        x_edge = x_edge.contiguous(memory_format=torch.channels_last)
    amp = autocast_for(settings.precision, torch.device(device))
    n = x_edge.shape[0]
    display = one_hot_responses(list(range(num_classes)), num_classes, settings.display_scale, device)
    labels = torch.arange(num_classes)

    def snap(step: int) -> Snapshot:
        G.eval()
        with torch.no_grad():
            img = G(display).cpu()
        G.train()
        return Snapshot(step, img, labels)

    snapshots = [snap(0)]
    history: list[dict[str, float]] = []
    steps = math.ceil(n / settings.gan_batch)
    start = time.perf_counter()
    bar = tqdm(range(1, settings.gan_epochs + 1), desc=f"MEKD-{response}: train G and D", disable=not progress,
               leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        sums = {"d_loss": 0.0, "g_loss": 0.0, "info_loss": 0.0, "teacher_agrees": 0.0, "teacher_confidence": 0.0,
                "kl_softmax_z_to_teacher": 0.0}
        seen = 0
        for s in range(steps):
            idx = perm[s * settings.gan_batch:(s + 1) * settings.gan_batch]
            real = x_edge[idx]
            b = real.shape[0]
            z = torch.randn(b, num_classes, generator=gen).to(device)
            with amp:
                fake = G(z).float()  # the box takes fp32 images
            with box.phase("deprivatisation: G(z)"):
                answers = ask_within_mode(box, fake.detach(), response)
            top = answers if response == "hard" else answers.argmax(1)
            # --- D: real/fake, plus its class head on the generated images
            with amp:
                d_real, _ = D(real)
                d_fake, c_fake = D(fake.detach())
            d_real, d_fake, c_fake = d_real.float(), d_fake.float(), c_fake.float()
            d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            if class_head:  # the lab's earlier reading: D and G both minimise CE(D_cls(G(z)), ŷ_t)
                d_loss = d_loss + weight * F.cross_entropy(c_fake, top)
            elif settings.deprivatisation not in REAL_FAKE_ONLY:  # teacher imitation: D_cls fits the answers
                d_loss = d_loss + _aux_loss(c_fake, answers)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # --- G: fool D, plus the information term through D's class head
            with amp:
                g_fake, g_cls = D(fake)
            g_fake, g_cls = g_fake.float(), g_cls.float()
            if settings.deprivatisation in REAL_FAKE_ONLY:  # a weight from the teacher's answer times -log D(G(z))
                info_loss = (-information_weight(answers, response, settings.deprivatisation)
                             * torch.log(torch.sigmoid(g_fake) + 1e-5)).mean()
            else:
                info_loss = F.cross_entropy(g_cls, top if class_head else z.argmax(1))
            g_loss = F.binary_cross_entropy_with_logits(g_fake, torch.ones_like(g_fake)) + weight * info_loss
            check_finite(g_loss, "generator loss")
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            sums["d_loss"] += float(d_loss.detach()) * b
            sums["g_loss"] += float(g_loss.detach()) * b
            sums["info_loss"] += float(info_loss.detach()) * b
            sums["teacher_agrees"] += float((top == z.argmax(1)).float().sum())
            if response == "soft":
                sums["teacher_confidence"] += float(answers.max(1).values.sum())
                p_z = torch.softmax(z, 1)  # how far T(G(z)) is from the response z stands for, on this fresh z
                sums["kl_softmax_z_to_teacher"] += float((p_z * (p_z.log() - answers.clamp_min(1e-12).log())).sum())
            seen += b
        row = {"epoch": float(epoch), **{k: v / seen for k, v in sums.items()},
               "queries": float(box.queries), "seconds": time.perf_counter() - t0}
        if response == "hard":
            row.pop("teacher_confidence")
            row.pop("kl_softmax_z_to_teacher")
        history.append(row)
        snapshots.append(snap(epoch))
        bar.set_postfix(agree=f"{row['teacher_agrees']:.2f}", d=f"{row['d_loss']:.2f}")
    freeze(G)
    D.eval()
    return Deprivatisation(G, D, history, snapshots, time.perf_counter() - start, n)


@dataclass(frozen=True)
class GeneratorSamplingSettings:
    """How :class:`GeneratorSynthesizer` draws from a trained G: its latent size (the class count), how the box
    answers (a response mode), G's forward batch, and the box phase the answers are counted under."""

    num_classes: int
    response: str = "soft"
    batch_size: int = 2048
    phase: str = "distillation: G(z)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "response", check_response(self.response))  # normalised, as the box modes name it


class GeneratorSynthesizer(Synthesizer):
    """Transfer images from a frozen generator: G(z), z ~ N(0, I_C), and the box's answers on them."""

    def __init__(self, box: BlackBox, generator: nn.Module, settings: GeneratorSamplingSettings,
                 seed: int = 0) -> None:
        super().__init__(box, seed)
        self.generator = freeze(generator)
        self.settings = settings
        self._gen = torch.Generator().manual_seed(seed)

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        s = self.settings
        device = next(self.generator.parameters()).device
        z = torch.randn(n, s.num_classes, generator=self._gen).to(device)
        with torch.no_grad():
            images = torch.cat([self.generator(z[i:i + s.batch_size]) for i in range(0, n, s.batch_size)])
        with self.box.phase(s.phase):
            targets = ask_within_mode(self.box, images, s.response)
        return SynthesisResult(images, targets, extras={"z": z})
