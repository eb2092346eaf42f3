"""The KD loss, pinned by golden values computed independently in float64."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from labkit.core.errors import NonFiniteError, UnknownNameError
from labkit.core.losses import KDLoss, SoftLabelKD, build_loss, check_finite, kd_loss, soften

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "fixtures" / "kd_golden.json").read_text())
S = torch.tensor(GOLDEN["student_logits"])
T = torch.tensor(GOLDEN["teacher_logits"])
Y = torch.tensor(GOLDEN["labels"])


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"tau{c['tau']}-alpha{c['alpha']}")
def test_kd_loss_matches_golden(case):
    got = kd_loss(S, T, Y, tau=case["tau"], alpha=case["alpha"])
    assert got.dim() == 0
    assert float(got) == pytest.approx(case["expected"], rel=1e-4)
    cls = KDLoss(tau=case["tau"], alpha=case["alpha"])
    assert float(cls(S, T, Y)) == pytest.approx(case["expected"], rel=1e-4)


def test_kd_from_probabilities_equals_from_logits():
    probs = torch.softmax(T, 1)
    a = KDLoss(tau=4, alpha=0.3)(S, T, Y)
    b = KDLoss(tau=4, alpha=0.3, from_probabilities=True)(S, probs, Y)
    assert torch.allclose(a, b, atol=1e-5)


def test_soften_from_probabilities_is_exact():
    assert torch.allclose(soften(torch.softmax(T, 1), 7.0, is_probability=True), torch.softmax(T / 7.0, 1), atol=1e-6)


def test_probabilities_into_kl_div_is_the_classic_bug():
    # passing probabilities (not log-probabilities) gives a different, wrong number; we must not do that
    wrong = F.kl_div(F.softmax(S / 4, 1), F.softmax(T / 4, 1), reduction="batchmean") * 16
    assert abs(float(wrong) - float(kd_loss(S, T, tau=4))) > 1e-2


def test_kd_loss_zero_when_student_equals_teacher():
    assert float(kd_loss(T, T, tau=3)) == pytest.approx(0.0, abs=1e-6)


def test_soft_label_kd_and_registry():
    p = torch.softmax(T / 2, 1)
    assert torch.allclose(SoftLabelKD(tau=2)(S, p), kd_loss(S, T, tau=2), atol=1e-6)
    assert isinstance(build_loss("kd", tau=2.0), KDLoss)
    with pytest.raises(UnknownNameError, match=r"^Unknown loss 'nope'\. Valid losses are: ce, ") as err:
        build_loss("nope")
    assert "losss" not in str(err.value) and "Valid loss are" not in str(err.value)


def test_bad_settings_and_nan_are_clear_errors():
    with pytest.raises(ValueError, match="tau"):
        KDLoss(tau=0)
    with pytest.raises(ValueError, match="alpha"):
        KDLoss(alpha=2)
    with pytest.raises(ValueError, match="hard labels"):
        kd_loss(S, T, None, tau=2, alpha=0.5)
    with pytest.raises(NonFiniteError, match="learning rate"):
        check_finite(torch.tensor(float("nan")))
