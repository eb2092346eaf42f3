"""Small distillation losses behind a name registry.

The KD loss is Hinton et al.'s: the student's ``log_softmax`` against the teacher's
``softmax`` at temperature τ, KL with batch-mean reduction, scaled by τ², mixed
with cross-entropy on hard labels by α:

    L = α·CE(S(x), y) + (1 − α)·τ²·KL(softmax(T/τ) ‖ softmax(S/τ))
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.errors import NonFiniteError, UnknownNameError

LOSSES: dict[str, type[nn.Module]] = {}


def register_loss(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a loss available to :func:`build_loss` as ``name``."""
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        LOSSES[name] = cls
        return cls
    return deco


def registered_name(loss: nn.Module) -> str:
    """The registry name of ``loss``'s class; a loss outside the registry is refused."""
    for name, cls in LOSSES.items():
        if type(loss) is cls:
            return name
    raise UnknownNameError("registered loss class", type(loss).__name__, [c.__name__ for c in LOSSES.values()])


def build_loss(name: str, **kwargs: float) -> nn.Module:
    """Instantiate a registered loss by name."""
    if name not in LOSSES:
        raise UnknownNameError("loss", name, list(LOSSES))
    return LOSSES[name](**kwargs)


def soften(teacher_output: torch.Tensor, tau: float, *, is_probability: bool = False) -> torch.Tensor:
    """Teacher soft labels ``softmax(T/τ)`` from logits, or from probabilities via ``log p``."""
    logits = torch.log(teacher_output.clamp_min(1e-12)) if is_probability else teacher_output
    return torch.softmax(logits.float() / tau, dim=1)


def kd_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor, tau: float) -> torch.Tensor:
    """τ²·KL(p_T ‖ softmax(S/τ)), batch mean; ``teacher_probs`` are already softened at τ."""
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    return F.kl_div(log_p_s, teacher_probs.float(), reduction="batchmean") * tau * tau


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
            tau: float = 4.0, alpha: float = 0.0) -> torch.Tensor:
    """Hinton KD loss from teacher *logits* (see module doc). ``labels`` needed only if α > 0."""
    soft = kd_kl(student_logits, torch.softmax(teacher_logits.float() / tau, dim=1), tau)
    if alpha == 0:
        return soft
    if labels is None:
        raise ValueError("kd_loss with alpha > 0 needs hard labels")
    return alpha * F.cross_entropy(student_logits.float(), labels) + (1 - alpha) * soft


@register_loss("ce")
class CrossEntropy(nn.Module):
    """Plain cross-entropy on hard labels."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)


@register_loss("soft-ce")
class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy against a probability vector per sample: −Σ p·log softmax(S)."""

    def forward(self, logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
        return -(target_probs.float() * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


@register_loss("kd")
class KDLoss(nn.Module):
    """Hinton KD from teacher logits (or from probabilities with ``from_probabilities=True``)."""

    def __init__(self, tau: float = 4.0, alpha: float = 0.0, from_probabilities: bool = False) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError("temperature tau must be > 0")
        if not 0 <= alpha <= 1:
            raise ValueError("alpha must lie in [0, 1]")
        self.tau, self.alpha, self.from_probabilities = float(tau), float(alpha), from_probabilities

    def forward(self, student_logits: torch.Tensor, teacher_output: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        p_t = soften(teacher_output, self.tau, is_probability=self.from_probabilities)
        soft = kd_kl(student_logits, p_t, self.tau)
        if self.alpha == 0:
            return soft
        if labels is None:
            raise ValueError("KDLoss with alpha > 0 needs hard labels")
        return self.alpha * F.cross_entropy(student_logits.float(), labels) + (1 - self.alpha) * soft


@register_loss("soft-kd")
class SoftLabelKD(nn.Module):
    """KD against ready-made soft labels p (e.g. distance labels): α·CE(S, y) + (1−α)·τ²·KL(p ‖ softmax(S/τ))."""

    def __init__(self, tau: float = 1.0, alpha: float = 0.0) -> None:
        super().__init__()
        self.tau, self.alpha = float(tau), float(alpha)

    def forward(self, student_logits: torch.Tensor, soft_labels: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        soft = kd_kl(student_logits, soft_labels, self.tau)
        if self.alpha == 0 or labels is None:
            return soft
        return self.alpha * F.cross_entropy(student_logits.float(), labels) + (1 - self.alpha) * soft


def check_finite(value: torch.Tensor, what: str = "loss") -> torch.Tensor:
    """Raise :class:`NonFiniteError` with advice if ``value`` has NaN or inf."""
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(
            f"The {what} became NaN or infinite. Lower the learning rate, check the inputs for NaNs, "
            "or raise the temperature; the best weights so far are kept."
        )
    return value
