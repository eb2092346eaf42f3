"""MEKD's distillation loss: the student's logits aligned with the teacher's responses through the frozen generator G.

G is frozen. Fresh z give x′ = G(z) and the box answers r_T = T(x′): probabilities in soft mode (turned into logits
by log), class ids in hard mode (turned into one-hot vectors) (:func:`response_logits`). The student S minimises

    w_f·‖G(S(x′)/τ_g) − G(r_T/τ_g)‖₁ + w_kl·τ·KL(softmax(r_T/τ) ‖ softmax(S(x′)/τ))

with τ = τ_g = 5 and w_f = w_kl = 1 (‖·‖₁ is the mean absolute pixel difference, :func:`generative_alignment`).
Gradients of the first term reach S *through* the frozen G, which still gives signal when r_T is only a one-hot
decision. :class:`GenerativeAlignmentLoss` is registered as ``"mekd-alignment"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labkit.core.errors import AccessDenied
from labkit.core.losses import register_loss
from labkit.synthesis.deprivatisation import check_response
from labkit.synthesis.generators import freeze


def response_logits(response: torch.Tensor, num_classes: int, mode: str, eps: float = 1e-8) -> torch.Tensor:
    """The teacher's response as a logit-like vector: log p (soft) or a one-hot vector (hard)."""
    mode = check_response(mode)
    if mode == "hard":
        if torch.is_floating_point(response):
            raise AccessDenied("hard mode takes class ids (int64), not probabilities or scores")
        return F.one_hot(response.long(), num_classes).float()
    if not torch.is_floating_point(response) or response.dim() != 2:
        raise ValueError("soft mode takes an N×C tensor of probabilities")
    return torch.log(response.float().clamp_min(eps))


def generative_alignment(generator: nn.Module, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         tau_g: float = 5.0, teacher_images: torch.Tensor | None = None) -> torch.Tensor:
    """‖G(S/τ_g) − G(r_T/τ_g)‖₁ (mean absolute difference); gradients reach S through G.

    ``teacher_images`` may hold a precomputed G(r_T/τ_g) (it carries no gradient).
    """
    if teacher_images is None:
        with torch.no_grad():
            teacher_images = generator(teacher_logits.float() / tau_g)
    student_images = generator(student_logits.float() / tau_g)
    return (student_images - teacher_images.detach()).abs().mean()


@register_loss("mekd-alignment")
class GenerativeAlignmentLoss(nn.Module):
    """MEKD's distillation loss around a frozen generator (see the module docstring).

    ``forward(student_logits, teacher_response, teacher_images=None)``: ``teacher_response``
    is N×C probabilities (soft) or N class ids (hard). The generator is frozen here
    (eval mode, ``requires_grad=False``) and kept out of ``parameters()``.
    """

    def __init__(self, generator: nn.Module, num_classes: int, response: str = "soft", tau: float = 5.0,
                 tau_g: float = 5.0, w_f: float = 1.0, w_kl: float = 1.0) -> None:
        super().__init__()
        self.response = check_response(response)
        self._generator = (freeze(generator),)  # a tuple: not registered as a sub-module, not optimised
        self.num_classes, self.tau, self.tau_g = num_classes, float(tau), float(tau_g)
        self.w_f, self.w_kl = float(w_f), float(w_kl)

    @property
    def generator(self) -> nn.Module:
        """The frozen generator."""
        return self._generator[0]

    def teacher_images(self, teacher_response: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """G(r_T/τ_g) for a whole transfer set, batched, without gradients."""
        outs = []
        with torch.no_grad():
            for i in range(0, teacher_response.shape[0], batch_size):
                r = response_logits(teacher_response[i:i + batch_size], self.num_classes, self.response)
                outs.append(self.generator(r / self.tau_g))
        return torch.cat(outs)

    def parts(self, student_logits: torch.Tensor, teacher_response: torch.Tensor,
              teacher_images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alignment term, KL term)`` before weighting."""
        self.generator.eval()
        r = response_logits(teacher_response, self.num_classes, self.response).to(student_logits.device)
        align = generative_alignment(self.generator, student_logits, r, self.tau_g, teacher_images)
        p_t = torch.softmax(r / self.tau, dim=1)
        kl = F.kl_div(F.log_softmax(student_logits.float() / self.tau, dim=1), p_t, reduction="batchmean") * self.tau
        return align, kl

    def forward(self, student_logits: torch.Tensor, teacher_response: torch.Tensor,
                teacher_images: torch.Tensor | None = None) -> torch.Tensor:
        align, kl = self.parts(student_logits, teacher_response, teacher_images)
        return self.w_f * align + self.w_kl * kl
