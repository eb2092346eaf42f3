"""Every measurement the lab reports or plots: accuracy, agreement, entropy, rank correlation, top-2 agreement."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched (float32)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = [model(x[i:i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outs)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in [0, 1]."""
    pred = predict_logits(model, x, batch_size).argmax(1)
    return float((pred == y.to(pred.device)).float().mean())


def agreement(student: nn.Module, teacher: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> float:
    """Fraction of ``x`` on which student and teacher give the same top-1 class."""
    a = predict_logits(student, x, batch_size).argmax(1)
    b = predict_logits(teacher, x, batch_size).argmax(1).to(a.device)
    return float((a == b).float().mean())


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of a probability matrix."""
    p = probs.float().clamp_min(1e-12)
    return -(p * p.log()).sum(1)


def spearman_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` (average ranks for ties)."""
    def ranks(v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        order = v.argsort(dim=1)
        r = torch.empty_like(v)
        r.scatter_(1, order, torch.arange(v.shape[1], dtype=v.dtype, device=v.device).expand_as(v).contiguous())
        # average ranks over ties: mean rank of equal values
        eq = (v.unsqueeze(2) == v.unsqueeze(1)).double()
        return (eq @ r.unsqueeze(2)).squeeze(2) / eq.sum(2)
    ra, rb = ranks(a), ranks(b)
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    den = (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)
    return ((ra * rb).sum(1) / den).float()


def top2_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row: do ``a`` and ``b`` have the same two top classes (as a set)? Bool ``(N,)``."""
    ta, tb = a.topk(2, dim=1).indices.sort(1).values, b.topk(2, dim=1).indices.sort(1).values
    return (ta == tb.to(ta.device)).all(1)
