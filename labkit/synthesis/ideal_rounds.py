"""IDEAL's rounds: a generator trained against the student, and one teacher call per round (class ids).

For each round (:class:`IDEALSynthesizer`, its sizes a :class:`RoundSettings`):

1. *Generate, at no query cost.* Re-initialise the generator G (``reset_generator``) and train it for ``g_steps``
   Adam steps (``lr_g``) against the current guide student S only, on one fixed batch of latent codes z:
   ``L_G = CE(S(aug(G(z))), y) + λ·L_info`` (:func:`generator_loss`; targets cycling through the classes, ``aug``
   a random crop and flip, :func:`crop_and_flip`). The batch of the step with the lowest loss is kept.
2. *Query once.* One box call labels those ``per_round`` images; ``extra_per_round`` more images from fresh latents
   through the trained G are labelled in a second call (phase ``teacher labels (round samples)``).
3. *Train the guide.* One pass of S over every image labelled so far, cross-entropy on the teacher's class ids
   (SGD, ``guide_lr``, momentum 0.9, weight decay 5e-4).

``L_info`` (:func:`information_loss`): ``"paper"`` is ``Σ_c p̄_c log p̄_c`` of the batch-mean prediction (class
balance), ``"authors"`` the public code's mean of ``p log p``. G and the guide run in channels-last memory.

``requery_pool`` replaces steps 2-3 by the public code's loop: the batch joins the pool unasked, and one call asks
for every pooled image, each flipped by its own coin, every round (phase ``teacher labels (flipped pool)``; R rounds
cost ``per_round·R(R+1)/2``); the guide's pass trains on those answers. ``g_init="authors"`` initialises G as the
public code does (N(0, 0.02)).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox, autocast_for
from labkit.core.errors import ConfigError
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer
from labkit.synthesis.generators import LatentGenerator

PHASE = "teacher labels"  # the query call of every round (the best batch)
REQUERY_PHASE = "teacher labels (flipped pool)"  # the public code's call: every pooled image again, flipped at random
ROUND_SAMPLES_PHASE = "teacher labels (round samples)"  # the lab addition's second call of a round
INFO_MODES = ("paper", "authors")


@dataclass(frozen=True)
class RoundSettings:
    """What :class:`IDEALSynthesizer` does in every round (a method config builds one)."""

    per_round: int  # images of each round's best batch, labelled in one box call
    g_steps: int  # Adam steps of the generator per round, no teacher queries
    nz: int  # latent size of the generator
    g_width: int  # generator width (channels of its last hidden layer)
    guide_batch: int  # batch size of the guide student's pass
    lr_g: float = 1e-3  # generator learning rate (Adam, betas 0.5/0.999)
    guide_lr: float = 0.01  # guide learning rate (SGD, momentum 0.9, weight decay 5e-4)
    info_weight: float = 5.0  # weight λ of the information term
    info_mode: str = "paper"  # the information term: one of INFO_MODES
    reset_generator: bool = True  # re-initialise G every round (False: one G trained across rounds)
    extra_per_round: int = 0  # round samples: more images per round from fresh latents, in a second call
    snapshot_per_class: int = 2  # images per class kept from every round
    curve_points: int = 4  # rounds at which the guide's weights are kept
    precision: str = "fp32"  # the generator steps: fp32, or bf16 autocast (the run's precision="bf16")
    g_init: str = "pytorch"  # G's initialisation every round: PyTorch's defaults, or "authors" (N(0, 0.02))
    requery_pool: bool = False  # the public code's loop: every round asks again for every pooled image, flipped
    fused_upsample: bool = False  # G's upsample-convs as one transposed conv each (same function, fewer MACs)

    @property
    def images_per_round(self) -> int:
        """Teacher queries per round: the best batch plus the round samples (without ``requery_pool``)."""
        return self.per_round + self.extra_per_round

    def queries_after(self, rounds: int) -> int:
        """Teacher queries spent by the end of round ``rounds``: ``images_per_round`` a round, or with
        ``requery_pool`` the whole pool every round, ``per_round·R(R+1)/2``."""
        if self.requery_pool:
            return self.per_round * rounds * (rounds + 1) // 2
        return rounds * self.images_per_round

    def rounds_for(self, budget: int) -> int:
        """The most rounds ``budget`` queries pay for."""
        if not self.requery_pool:
            return budget // self.images_per_round
        rounds = 0  # a few hundred rounds at most: counting up is exact and cheap
        while self.queries_after(rounds + 1) <= budget:
            rounds += 1
        return rounds


# --------------------------------------------------------------------------- the generator's loss
def information_loss(student_logits: torch.Tensor, mode: str = "paper") -> torch.Tensor:
    """IDEAL's information term. ``paper``: ``Σ_c p̄_c log p̄_c`` of the batch-mean prediction p̄ (−entropy of
    the class balance; minimal when the batch covers every class equally). ``authors``: ``mean(p log p)`` over
    every sample and class, as the public code computes it."""
    p = F.softmax(student_logits, dim=1)
    if mode == "paper":
        mean = p.mean(0)
        return (mean * torch.log(mean.clamp_min(1e-12))).sum()
    if mode == "authors":
        return (p * torch.log(p.clamp_min(1e-12))).mean()
    raise ConfigError(f"unknown info_mode {mode!r}; choose one of {INFO_MODES}")


def generator_loss(student_logits: torch.Tensor, targets: torch.Tensor, info_weight: float = 5.0,
                   mode: str = "paper") -> torch.Tensor:
    """``CE(S(x), y) + λ·L_info``: what the generator minimises each step (no teacher involved)."""
    return F.cross_entropy(student_logits, targets) + info_weight * information_loss(student_logits, mode)


def crop_and_flip(x: torch.Tensor, gen: torch.Generator, padding: int = 4) -> torch.Tensor:
    """A differentiable random crop (zero padding ``padding``) and horizontal flip, one draw per image."""
    n, _, h, w = x.shape
    shift = torch.randint(-padding, padding + 1, (n, 2), generator=gen, device=x.device).to(x.dtype)
    flip = torch.where(torch.rand(n, generator=gen, device=x.device) < 0.5, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = flip
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 2 * shift[:, 0] / w
    theta[:, 1, 2] = 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- the rounds
class IDEALSynthesizer(Synthesizer):
    """IDEAL's rounds: generate against the guide student, one teacher call, one guide pass over the pool.

    ``synthesize(n)`` runs ``n // images_per_round`` rounds (``n``: the query budget) and returns every generated
    image with the teacher's class id. ``extras`` holds per round the teacher's class counts, the generator's
    final loss and the guide's training loss, the round of every image (``round_of``), the guide's weights
    at ``curve_points`` rounds (``curve``) with the queries spent by then, and after every round (``round_states``).
    """

    def __init__(self, box: BlackBox, settings: RoundSettings, student_factory: Callable[[], nn.Module],
                 num_classes: int, image_shape: tuple[int, int, int], seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        """``student_factory`` makes the fresh guide student (on the device)."""
        super().__init__(box, seed, device=device, decision_only="IDEAL")
        self.settings = settings
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.new_student = student_factory

    def curve_rounds(self, rounds: int) -> list[int]:
        """Rounds (1-based) after which the guide's weights are kept: evenly spread, the last one included."""
        k = max(0, min(self.settings.curve_points, rounds))
        return sorted({max(1, int(round(rounds * (i + 1) / k))) for i in range(k)}) if k else []

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        settings, box, c, dev = self.settings, self.box, self.num_classes, self.device
        rounds = settings.rounds_for(n)
        if settings.requery_pool and settings.extra_per_round:
            raise ConfigError("the public code's re-queried pool and the lab's round samples do not combine; "
                              "switch one off")
        gen = torch.Generator(device=dev).manual_seed(self.seed)
        # channels-last: G's convolutions and their backward through the guide run about 1.6x faster on two CPU
        # cores (95 vs 155 ms per step of 500 images at width 8, docs/methods/ideal.md) and on CUDA
        generator = LatentGenerator(settings.nz, self.image_shape, settings.g_width,  # type: ignore[arg-type]
                                    settings.fused_upsample).to(dev)
        generator.to(memory_format=torch.channels_last)
        guide: nn.Module = self.new_student().to(memory_format=torch.channels_last)
        amp = autocast_for(settings.precision, torch.device(dev))
        opt_s = torch.optim.SGD(guide.parameters(), lr=settings.guide_lr, momentum=0.9, weight_decay=5e-4)
        targets = torch.arange(settings.per_round, device=dev) % c  # the classes in turn, as the public code
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        history: list[dict[str, Any]] = []
        snapshots: list[Snapshot] = []
        curve: list[dict[str, Any]] = []
        round_states: list[dict[str, torch.Tensor]] = []  # the guide after every round (the public code's student)
        seen = torch.zeros(0, 2, dtype=torch.bool, device=dev)  # re-queried pool: which of the two inputs were sent
        keep_curve = set(self.curve_rounds(rounds))
        snap_idx = torch.cat([(targets == k).nonzero().squeeze(1)[: settings.snapshot_per_class] for k in range(c)])
        bar = tqdm(range(rounds), desc="IDEAL rounds", disable=not progress, leave=False)
        for r in bar:
            # 1. generate against the guide only (no teacher query)
            if settings.reset_generator or r == 0:
                generator.reset_parameters(settings.g_init)
            generator.train()
            guide.eval()
            for p in guide.parameters():
                p.requires_grad_(False)
            # the plain (foreach) Adam, not the fused one: the same update to rounding, no faster here, and IDEAL's
            # outcome follows rounding (seed 0: 60.3 % with it, 52.7 % fused; docs/speed.md)
            opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr_g, betas=(0.5, 0.999))
            z = torch.randn(settings.per_round, settings.nz, generator=gen, device=dev)
            best_loss = torch.full((), math.inf, device=dev)
            best_x = torch.zeros((settings.per_round,) + self.image_shape, device=dev)
            for _ in range(settings.g_steps):
                opt_g.zero_grad(set_to_none=True)
                with amp:
                    images = generator(z).float()
                    guide_logits = guide(crop_and_flip(images, gen)).float()
                loss = generator_loss(guide_logits, targets, settings.info_weight, settings.info_mode)
                better = loss.detach() < best_loss  # kept on the device: no host sync per step
                best_x = torch.where(better, images.detach(), best_x)
                best_loss = torch.where(better, loss.detach(), best_loss)
                loss.backward()
                opt_g.step()
            for p in guide.parameters():
                p.requires_grad_(True)
            if settings.requery_pool:
                # 2-3, the public code's loop: the batch joins the pool unasked; one call asks for every pooled
                # image, each flipped at random, and the guide trains one pass on those answers
                xs.append(best_x)
                seen = torch.cat([seen, torch.zeros(settings.per_round, 2, dtype=torch.bool, device=dev)])
                pool_in, pool_labels = self._requery(torch.cat(xs), gen, seen)
                labels = pool_labels[-settings.per_round:]
                guide_loss = self._guide_pass(guide, opt_s, pool_in, pool_labels, gen)
            else:
                # 2. one teacher call for the round's images
                with box.phase(PHASE):
                    labels = box(best_x.clamp(0, 1)).to(dev)
                # round samples: more draws from this round's G, fresh latents, a second call
                if settings.extra_per_round:
                    with torch.no_grad():
                        more = generator(torch.randn(settings.extra_per_round, settings.nz, generator=gen, device=dev))
                    with box.phase(ROUND_SAMPLES_PHASE):
                        more_labels = box(more.clamp(0, 1)).to(dev)
                    best_x, labels = torch.cat([best_x, more]), torch.cat([labels, more_labels])
                xs.append(best_x)
                ys.append(labels)
                # 3. one pass of the guide over every image labelled so far
                guide_loss = self._guide_pass(guide, opt_s, torch.cat(xs), torch.cat(ys), gen)
            counts = torch.bincount(labels, minlength=c)
            history.append({"round": r + 1, "queries": settings.queries_after(r + 1), "g_loss": best_loss,
                            "guide_loss": guide_loss, "teacher_counts": counts})
            snapshots.append(Snapshot(r + 1, best_x[snap_idx].cpu(), targets[snap_idx].cpu()))  # the class aimed at
            round_states.append({k: v.detach().cpu().clone() for k, v in guide.state_dict().items()})
            if r + 1 in keep_curve:
                curve.append({"round": r + 1, "queries": settings.queries_after(r + 1),
                              "state": round_states[-1]})
        for h in history:  # one host transfer at the end, not one per round
            h["g_loss"] = float(h["g_loss"])
            h["guide_loss"] = float(h["guide_loss"])
            h["teacher_counts"] = h["teacher_counts"].tolist()
        round_of = torch.arange(rounds, device=dev).repeat_interleave(settings.images_per_round)
        is_round_sample = (torch.arange(settings.images_per_round, device=dev) >= settings.per_round).repeat(rounds)
        # the images and answers the student gets: each image once, with its latest answer (re-queried: the last
        # round's flipped input and its answer)
        images, answers = (pool_in, pool_labels) if settings.requery_pool else (torch.cat(xs), torch.cat(ys))
        return SynthesisResult(images, answers, snapshots,
                               {"history": history, "curve": curve, "round_of": round_of, "rounds": rounds,
                                "is_round_sample": is_round_sample, "round_states": round_states,
                                "distinct_inputs": int(seen.sum()) if settings.requery_pool else len(answers)})

    def _requery(self, pool: torch.Tensor, gen: torch.Generator, seen: torch.Tensor) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
        """The public code's ``kd_train`` query: every pooled image flipped at random (its own coin, each round) and
        asked again in one call. ``seen`` (pool × 2) marks which of each image's two inputs were sent."""
        flip = torch.rand(pool.shape[0], generator=gen, device=pool.device) < 0.5
        seen[torch.arange(pool.shape[0], device=pool.device), flip.long()] = True
        inputs = torch.where(flip[:, None, None, None], pool.flip(-1), pool)
        with self.box.phase(REQUERY_PHASE):
            answers = self.box(inputs.clamp(0, 1)).to(pool.device)
        return inputs, answers

    def _guide_pass(self, guide: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
        """One epoch of the guide over the pool, cross-entropy on the teacher's ids; the mean loss (a tensor)."""
        guide.train()
        order = torch.randperm(x.shape[0], generator=gen, device=x.device)
        total = torch.zeros((), device=x.device)
        for s in range(0, x.shape[0], self.settings.guide_batch):
            idx = order[s:s + self.settings.guide_batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(guide(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total = total + loss.detach() * idx.numel()
        guide.eval()
        return total / x.shape[0]
