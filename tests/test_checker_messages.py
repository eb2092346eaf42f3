"""Every "Your turn" checker names the learner's actual mistake, says it once, passes the reference solution and
calls an empty function "not attempted".

Each table row is a wrong answer written the way a learner writes it (not built from the checker's own slip table),
with a piece of the message it must get. A row whose expected text is None is a right answer."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from labkit.teaching.exercises import ExerciseResult

pytestmark = pytest.mark.filterwarnings("ignore:reduction")  # a learner's reduction='mean' warns; that is the slip


def _checker(module: str, name: str) -> Callable[..., ExerciseResult]:
    return getattr(importlib.import_module(f"labkit.teaching.exercises.{module}"), name)


# ------------------------------------------------------------------------------------------- 00: decision accuracy
def acc_right(box, x, y):
    return float((box(x) == y).float().mean())


ACCURACY = [
    (acc_right, None),
    (lambda box, x, y: 100 * float((box(x) == y).float().mean()), "not a percentage"),
    (lambda box, x, y: float((box(x) != y).float().mean()), "error rate"),
    (lambda box, x, y: float((box(x) == y).sum()), "divide by the number of images"),
    (lambda box, x, y: float(torch.cat([box(x[i:i + 1]) for i in range(len(x))]).eq(y).float().mean()),
     "one batched call"),
    (lambda box, x, y: float((box(x) == y).float().mean()) + 0 * float(box(x).sum()), "more than 200 queries"),
]


# ------------------------------------------------------------------------------------------------- 01: KD loss
def kd_right(s, t, tau):
    return F.kl_div(F.log_softmax(s / tau, dim=1), F.softmax(t / tau, dim=1), reduction="batchmean") * tau ** 2


def _kd(s, t, tau, reduction="batchmean", factor=None, student=F.log_softmax, teacher=F.softmax, dim=1):
    loss = F.kl_div(student(s, dim=dim), teacher(t, dim=dim), reduction=reduction)
    return loss * (tau ** 2 if factor is None else factor)


KD = [
    (kd_right, None),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, factor=1.0), "τ² factor is missing"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, factor=tau), "τ², not τ"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, factor=1 / tau ** 2), "do not divide"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, reduction="mean"), "reduction='batchmean'"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, reduction="sum"), "sum over the batch"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, student=F.softmax), "log-probabilities"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, teacher=F.log_softmax), "teacher's probabilities"),
    (lambda s, t, tau: _kd(t / tau, s / tau, tau), "direction is swapped"),
    (lambda s, t, tau: -kd_right(s, t, tau), "The sign"),
    (lambda s, t, tau: _kd(s, t, tau), "Divide both logits by τ"),
    (lambda s, t, tau: _kd(s, t / tau, tau), "student's logits by τ too"),
    (lambda s, t, tau: _kd(s / tau, t, tau), "teacher's logits by τ too"),
    (lambda s, t, tau: _kd(s, t, tau, factor=1.0), "τ is not used"),
    (lambda s, t, tau: -(F.softmax(t / tau, 1) * F.log_softmax(s / tau, 1)).sum(1).mean() * tau ** 2,
     "cross-entropy"),
    (lambda s, t, tau: _kd(s / tau, t / tau, tau, dim=0), "over the classes (dim=1)"),
    (lambda s, t, tau: kd_right(s, t, tau) * 1.5, "step by step"),  # no known slip: no guessed advice
    (lambda s, t, tau: F.kl_div(F.log_softmax(s / tau, 1), F.softmax(t / tau, 1), reduction="none") * tau ** 2,
     "single scalar"),
]


# ---------------------------------------------------------------------------------------------- 02: bisection
def bisect_right(is_hit, lo, hi, tol):
    lo, hi = lo.clone(), hi.clone()
    while bool(((hi - lo) > tol).any()):
        mid = (lo + hi) / 2
        hit = is_hit(mid)
        hi, lo = torch.where(hit, mid, hi), torch.where(hit, lo, mid)
    return hi


def _bisect(is_hit, lo, hi, tol, swapped=False, stop=1.0, give="hi", per_ray=False):
    lo, hi = lo.clone(), hi.clone()
    if per_ray:
        for i in range(len(lo)):
            while hi[i] - lo[i] > tol:
                mid = (lo[i] + hi[i]) / 2
                if is_hit(mid):
                    hi[i] = mid
                else:
                    lo[i] = mid
        return hi
    while bool(((hi - lo) > stop * tol).any()):
        mid = (lo + hi) / 2
        hit = is_hit(mid)
        if swapped:
            hit = ~hit
        hi, lo = torch.where(hit, mid, hi), torch.where(hit, lo, mid)
    return {"hi": hi, "lo": lo, "mid": (lo + hi) / 2}[give]


BISECT = [
    (bisect_right, None),
    (lambda *a: _bisect(*a, swapped=True), "updates are swapped"),
    (lambda *a: _bisect(*a, give="lo"), "return the *hit* side"),
    (lambda *a: _bisect(*a, stop=4.0), "keep halving until hi − lo ≤ tol"),
    (lambda *a: _bisect(*a, stop=0.01), "Query all rays together"),
    (lambda *a: _bisect(*a, per_ray=True), "one λ per ray"),
    (lambda is_hit, lo, hi, tol: _bisect(is_hit, lo, hi, tol)[:1], "one λ per ray"),
]


# -------------------------------------------------------------------------------------------- 03: soft labels
def _z(d, y, inverse=True, own="sum"):
    z = torch.where(torch.isfinite(d), 1.0 / d if inverse else d, torch.zeros_like(d))
    if own == "sum":
        z[torch.arange(len(y)), y] = z.sum(1)
    elif own == "max":
        z[torch.arange(len(y)), y] = z.max(1).values
    return z


def soft_right(distances, y, tau):
    return torch.softmax(_z(distances, y) / tau, dim=1)


def soft_raw_d(distances, y, tau):  # d with no care for inf
    z = distances.clone()
    z[torch.arange(len(y)), y] = z.sum(1)
    return torch.softmax(z / tau, dim=1)


SOFT = [
    (soft_right, None),
    (lambda d, y, tau: torch.softmax(_z(d, y, inverse=False) / tau, dim=1), "1/d"),  # the case
    (soft_raw_d, "1/d"),
    (lambda d, y, tau: torch.softmax(_z(d, y), dim=1), "Divide z by τ before the softmax"),
    (lambda d, y, tau: torch.softmax(_z(d, y) * tau, dim=1), "do not multiply"),
    (lambda d, y, tau: torch.softmax(_z(d, y, own="none") / tau, dim=1), "own class's score is missing"),
    (lambda d, y, tau: torch.softmax(_z(d, y, own="max") / tau, dim=1), "not their largest"),
    (lambda d, y, tau: torch.softmax(_z(d, y) / tau, dim=0), "not over the batch"),
    (lambda d, y, tau: torch.log_softmax(_z(d, y) / tau, dim=1), "not log_softmax"),
    (lambda d, y, tau: _z(d, y) / tau, "Finish with a softmax"),
    (lambda d, y, tau: _z(d, y) / _z(d, y).sum(1, keepdim=True), "not by dividing z by its sum"),
    (lambda d, y, tau: torch.softmax(_z(d, y) / (tau + 1), dim=1), "Check each step"),  # no known slip
    (lambda d, y, tau: soft_right(d, y, tau)[:, :-1], "Return an (N, C)"),
]


# ---------------------------------------------------------------------------------------- 04: class similarity
def _cos(w, dim=1):
    u = F.normalize(w.float(), dim=dim)
    return u @ u.T


def _minmax(m, dim=1):
    lo, hi = m.min(dim, keepdim=True).values, m.max(dim, keepdim=True).values
    return (m - lo) / (hi - lo)


SIMILARITY = [
    (lambda w: _minmax(_cos(w)), None),
    (lambda w: _cos(w), "raw cosine matrix"),
    (lambda w: _minmax(w @ w.T), "not plain dot products"),
    (lambda w: _minmax(_cos(w), dim=0), "not each column"),
    (lambda w: _minmax(_cos(w)).T, "not each column"),
    (lambda w: (_cos(w) - _cos(w).min()) / (_cos(w).max() - _cos(w).min()), "not the whole matrix"),
    (lambda w: _cos(w) / _cos(w).max(dim=1, keepdim=True).values, "raw cosine matrix"),  # the row max is 1
    (lambda w: _minmax(_cos(w, dim=0)), "F.normalize(weight, dim=1)"),
    (lambda w: _minmax(1 - _cos(w)), "a distance, not a similarity"),
    (lambda w: _minmax(F.normalize(w, dim=0).T @ F.normalize(w, dim=0)), "similarities between columns"),
]


# ------------------------------------------------------------------------------------ 05: label-preserving step
def _step(box, x, y, direction, step_size, max_halvings, sign=-1.0, clip=True, rounds=None, keep_failed=False):
    lam = torch.full((x.shape[0], 1), float(step_size))
    out = x.clone()
    todo = direction.reshape(x.shape[0], -1).abs().sum(1) > 0
    for _ in range(max_halvings + 1 if rounds is None else rounds(max_halvings)):
        if not bool(todo.any()):
            break
        idx = todo.nonzero().squeeze(1)
        proposal = x[idx] + sign * lam[idx] * direction[idx]
        if clip:
            proposal = proposal.clamp(0, 1)
        same = box(proposal) == y[idx]
        if keep_failed:
            out[idx] = proposal
        else:
            out[idx[same]] = proposal[same]
        todo[idx[same]] = False
        lam[idx[~same]] /= 2
    return out


STEP = [
    (_step, None),
    (lambda *a: _step(*a, sign=1.0), "move *toward* the boundary"),
    (lambda *a: _step(*a, clip=False), "Clamp with x.clamp(0, 1)"),  # the box refuses pixels outside [0, 1]
    (lambda *a: _step(*a, keep_failed=True), "stays where it is"),
    (lambda *a: _step(*a, rounds=lambda h: 1), "No halving"),
    (lambda *a: _step(*a, rounds=lambda h: h), "One halving short"),
    (lambda *a: _step(*a, rounds=lambda h: h + 3), "Stop after max_halvings halvings"),
    (lambda *a: _step(*a, rounds=lambda h: 100), "Stop after max_halvings halvings"),
    (lambda box, x, *a: x[:-1], "Return the new images"),
]


# ------------------------------------------------------------------------------------------------- 06: MixUp
def _mixup(x1, x2, lam, low=0.05, high=0.95, rounding=lambda v: torch.round(v * 100) / 100, mix_raw=False,
           return_raw=False, inclusive=False, drop=True, swap=False):
    lam_r = rounding(lam.double())
    keep = (lam_r >= low) & (lam_r <= high) if inclusive else (lam_r > low) & (lam_r < high)
    if not drop:
        keep = torch.ones_like(keep)
    w = (lam if mix_raw else lam_r)[keep].to(x1.dtype).view(-1, 1, 1, 1)
    a, b = (x2, x1) if swap else (x1, x2)
    return w * a[keep] + (1 - w) * b[keep], (lam if return_raw else lam_r)[keep]


MIXUP = [
    (_mixup, None),
    (lambda *a: _mixup(*a, drop=False), "Nothing was dropped"),
    (lambda *a: _mixup(*a, rounding=lambda v: v), "Round λ to 2 decimals *before* thresholding"),
    (lambda *a: _mixup(*a, inclusive=True), "must be dropped too"),
    (lambda *a: _mixup(*a, mix_raw=True, return_raw=True), "rounded λ everywhere"),
    (lambda *a: _mixup(*a, return_raw=True), "Return the rounded λ"),
    (lambda *a: _mixup(*a, mix_raw=True), "Mix with the rounded λ"),
    (lambda *a: _mixup(*a, rounding=lambda v: torch.round(v * 10) / 10), "not 1"),
    (lambda *a: _mixup(*a, rounding=lambda v: torch.floor(v * 100) / 100), "not down"),
    (lambda *a: _mixup(*a, swap=True), "λ weighs x1"),
    (lambda *a: _mixup(*a)[0], "Return a tuple"),
]


# -------------------------------------------------------------------------------------- 07: alignment loss
def align_right(g, s, t, tau_g):
    with torch.no_grad():
        target = g(t / tau_g)
    return (g(s / tau_g) - target).abs().mean()


def align_detached(g, s, t, tau_g):
    with torch.no_grad():
        return (g(s / tau_g) - g(t / tau_g)).abs().mean()


def align_grad_on_teacher_only(g, s, t, tau_g):
    with torch.no_grad():
        student = g(s / tau_g)
    return (student - g(t / tau_g)).abs().mean()


ALIGNMENT = [
    (align_right, None),
    (lambda g, s, t, tau_g: (g(s) - g(t)).abs().mean(), "Divide both responses by τ_g"),
    (lambda g, s, t, tau_g: (g(s * tau_g) - g(t * tau_g)).abs().mean(), "do not multiply"),
    (lambda g, s, t, tau_g: (g(s) - g(t / tau_g)).abs().mean(), "student's logits by τ_g too"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t)).abs().mean(), "teacher's logits by τ_g too"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t / tau_g)).pow(2).mean(), "squared (L2)"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t / tau_g)).mean(), "absolute value"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t / tau_g)).abs().sum(), "that is the sum"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t / tau_g)).abs().flatten(1).sum(1).mean(), "each image's pixels"),
    (align_detached, "carries no gradient"),
    (align_grad_on_teacher_only, "carries no gradient"),
    (lambda g, s, t, tau_g: (g(s.detach() / tau_g) - g(t / tau_g)).abs().mean() + 0 * s.sum(), "No gradient reached"),
    (lambda g, s, t, tau_g: (g(s / tau_g) - g(t / tau_g)).abs(), "one scalar tensor"),
]


# ------------------------------------------------------------------------------------------ 08: Pareto front
def pareto_right(queries, accuracy):
    q, a = torch.tensor(queries, dtype=torch.float64), torch.tensor(accuracy, dtype=torch.float64)
    no_worse = (q[None, :] <= q[:, None]) & (a[None, :] >= a[:, None])
    better = (q[None, :] < q[:, None]) | (a[None, :] > a[:, None])
    return torch.nonzero(~(no_worse & better).any(dim=1)).flatten().tolist()


def _pareto(queries, accuracy, rule):
    q, a = torch.tensor(queries, dtype=torch.float64), torch.tensor(accuracy, dtype=torch.float64)
    out = []
    for i in range(len(q)):
        if not any(rule(q[j], a[j], q[i], a[i]) for j in range(len(q)) if j != i):
            out.append(i)
    return out


PARETO = [
    (pareto_right, None),
    (lambda q, a: sorted(set(range(len(q))) - set(pareto_right(q, a))), "Those are the beaten methods"),
    (lambda q, a: [i in pareto_right(q, a) for i in range(len(q))], "not a True/False mask"),
    (lambda q, a: _pareto(q, a, lambda qj, aj, qi, ai: qj <= qi and aj >= ai), "A tie is not a defeat"),
    (lambda q, a: _pareto(q, a, lambda qj, aj, qi, ai: qj < qi and aj > ai), "Strictly better on *one* count"),
    (lambda q, a: _pareto(q, a, lambda qj, aj, qi, ai: qj >= qi and aj >= ai and (qj > qi or aj > ai)),
     "Fewer queries is better"),
    (lambda q, a: [0], "A method is beaten when"),  # no known slip: the general rule, no guess
    (lambda q, a: 3, "integer indices"),
]


# ----------------------------------------------------------------------------------- 09: class-balance term
def info_right(logits):
    mean = torch.softmax(logits, dim=1).mean(0)
    return (mean * torch.log(mean.clamp_min(1e-12))).sum()


INFORMATION = [
    (info_right, None),
    (lambda z: (torch.softmax(z, 1) * torch.log_softmax(z, 1)).sum(1).mean(), "average the probabilities over the "
     "batch *first*"),
    (lambda z: -info_right(z), "The sign"),
    (lambda z: (torch.softmax(z, 1).mean(0) * torch.softmax(z, 1).mean(0).log()).mean(), "not their mean"),
    (lambda z: (torch.softmax(z.mean(0), 0) * torch.softmax(z.mean(0), 0).log()).sum(), "not the logits"),
    (lambda z: (torch.softmax(z, 0).mean(1) * torch.softmax(z, 0).mean(1).log()).sum(), "softmax over the classes"),
    (lambda z: (torch.softmax(z, 1).mean(0) * torch.softmax(z, 1).mean(0).log2()).sum(), "natural log"),
    (lambda z: torch.softmax(z, 1).mean(0).log().sum(), "needs both factors"),
    (lambda z: info_right(z) * 2, "Use p̄ = softmax"),  # no known slip
    (lambda z: torch.softmax(z, 1).mean(0), "one scalar tensor"),
]


TABLES: dict[tuple[str, str], list[tuple[Callable[..., Any], str | None]]] = {
    ("query_counting", "check_decision_accuracy"): ACCURACY,
    ("kd_loss", "check_kd_loss"): KD,
    ("bisection", "check_bisect"): BISECT,
    ("bisection", "check_distance_soft_labels"): SOFT,
    ("class_similarity", "check_class_similarity"): SIMILARITY,
    ("label_preserving_step", "check_label_preserving_step"): STEP,
    ("mixup", "check_mixup_with_thresholds"): MIXUP,
    ("alignment_loss", "check_alignment_loss"): ALIGNMENT,
    ("leaderboard", "check_pareto_front"): PARETO,
    ("information_loss", "check_information_loss"): INFORMATION,
}
ROWS = [pytest.param(module, name, fn, expected, id=f"{name}-{i}")
        for (module, name), rows in TABLES.items() for i, (fn, expected) in enumerate(rows)]


@pytest.mark.parametrize("module,name,fn,expected", ROWS)
def test_a_checker_names_the_mistake_once(module: str, name: str, fn: Callable[..., Any], expected: str | None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    result = _checker(module, name)(fn)
    printed = capsys.readouterr().out
    if expected is None:
        assert result.passed and "passed" in printed
        return
    text = " ".join(result.messages)
    assert result.attempted and not result.passed
    assert expected in text, f"expected {expected!r} in: {text}"
    lines = [line.strip() for line in printed.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), f"a line printed twice: {printed}"
    for message in result.messages:  # the advice itself is given once, not once per failing case
        advice = message.partition(". ")[2]
        assert not advice or printed.count(advice) == 1, printed


@pytest.mark.parametrize("module,name", list(TABLES))
def test_an_empty_function_is_not_attempted(module: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = _checker(module, name)(lambda *args, **kwargs: None)
    assert not result.attempted and not result.passed
    assert "not attempted yet" in capsys.readouterr().out


def test_the_d_instead_of_1_over_d_answer_no_longer_gets_the_temperature_advice() -> None:
    """The issue's case: d instead of 1/d while dividing by τ got "divide z by τ before the softmax"."""
    from labkit.teaching.exercises.bisection import check_distance_soft_labels

    text = " ".join(check_distance_soft_labels(SOFT[1][0]).messages)
    assert "1/d" in text and "divide z by τ" not in text.lower()


def test_the_tables_cover_every_checker() -> None:
    """A new checker gets its own table here (control: the list the kind-to-learners test keeps)."""
    from tests.test_exercises_kind import CHECKERS

    assert set(CHECKERS) == set(TABLES)
