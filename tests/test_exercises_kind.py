"""Checkers turn a learner's exception into a verdict, and a verdict is shown once in a notebook."""
from __future__ import annotations

import importlib
import re

import pytest
import torch

from labkit.teaching.exercises import ExerciseResult

CHECKERS = [("kd_loss", "check_kd_loss"), ("class_similarity", "check_class_similarity"),
            ("bisection", "check_bisect"), ("bisection", "check_distance_soft_labels"),
            ("leaderboard", "check_pareto_front"), ("mixup", "check_mixup_with_thresholds"),
            ("alignment_loss", "check_alignment_loss"), ("label_preserving_step", "check_label_preserving_step"),
            ("query_counting", "check_decision_accuracy"), ("information_loss", "check_information_loss")]


@pytest.mark.parametrize("module,name", CHECKERS)
def test_a_learners_exception_becomes_a_verdict(module: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    check = getattr(importlib.import_module(f"labkit.teaching.exercises.{module}"), name)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("oops")

    result = check(broken)
    assert isinstance(result, ExerciseResult) and result.attempted and not result.passed
    assert "raised ZeroDivisionError: oops" in " ".join(result.messages)
    assert "raised ZeroDivisionError" in capsys.readouterr().out


def test_a_verdict_is_displayed_once() -> None:
    result = ExerciseResult("x", True, True)
    assert result._ipython_display_() is None  # IPython shows nothing more than the printed verdict
    assert "passed" in repr(result)


def test_notebook_00_refuses_a_per_image_query_loop() -> None:
    from labkit.teaching.exercises.query_counting import check_decision_accuracy

    def looped(box, x, y):  # type: ignore[no-untyped-def]
        answers = torch.cat([box(x[i:i + 1]) for i in range(x.shape[0])])
        return float((answers == y).float().mean())

    verdict = check_decision_accuracy(looped)
    assert not verdict.passed and "one batched call" in " ".join(verdict.messages)
    assert check_decision_accuracy(lambda box, x, y: float((box(x) == y).float().mean())).passed


def test_a_hint_is_given_once_and_a_right_count_is_not_called_wrong() -> None:
    from labkit.teaching.exercises import dedupe_hints
    from labkit.teaching.exercises.kd_loss import check_kd_loss
    from labkit.teaching.exercises.mixup import check_mixup_with_thresholds

    msgs = dedupe_hints(["a: got 1. Use X.", "b: got 2. Use X.", "c: got 3. Use Y."])
    assert msgs == ["a: got 1. Use X.", "b: got 2 (same advice as above).", "c: got 3. Use Y."]
    no_tau2 = check_kd_loss(lambda s, t, tau: torch.nn.functional.kl_div(
        torch.log_softmax(s / tau, 1), torch.softmax(t / tau, 1), reduction="batchmean"))
    assert not no_tau2.passed and " ".join(no_tau2.messages).count("τ² factor") == 1

    def unrounded(x1, x2, lam, low, high):  # type: ignore[no-untyped-def]
        keep = (lam.round(decimals=2) > low) & (lam.round(decimals=2) < high)
        return (lam[keep].view(-1, 1, 1, 1) * x1[keep] + (1 - lam[keep].view(-1, 1, 1, 1)) * x2[keep]), lam[keep]

    verdict = check_mixup_with_thresholds(unrounded)
    text = " ".join(verdict.messages)
    assert not verdict.passed and "right number of λ" in text
    assert not re.search(r"kept (\d+) λ, expected \1\b", text)  # never "kept 38, expected 38"


def test_a_verdict_never_holds_the_same_line_twice(capsys: pytest.CaptureFixture[str]) -> None:
    """The source of 07's and 09's thrice-printed hint: one message per failing case, each with the same advice and
    no ". " for dedupe_hints to split on. A verdict now drops a repeated message (control: distinct ones stay)."""
    from labkit.teaching.exercises.alignment_loss import check_alignment_loss

    result = ExerciseResult("x", False, True, ["No gradient: do not detach.", "No gradient: do not detach.", "Other."])
    assert result.messages == ["No gradient: do not detach.", "Other."]

    def detached(g, s, t, tau_g):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return (g(s / tau_g) - g(t / tau_g)).abs().mean()

    capsys.readouterr()
    check_alignment_loss(detached)
    assert capsys.readouterr().out.count("carries no gradient") == 1
