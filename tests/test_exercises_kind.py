"""Checkers turn a learner's exception into a verdict, and a verdict is shown once in a notebook."""
from __future__ import annotations

import importlib

import pytest

from labkit.exercises import ExerciseResult

CHECKERS = [("kd_loss", "check_kd_loss"), ("class_similarity", "check_class_similarity"),
            ("bisection", "check_bisect"), ("bisection", "check_distance_soft_labels"),
            ("leaderboard", "check_pareto_front"), ("mixup", "check_mixup_with_thresholds"),
            ("alignment_loss", "check_alignment_loss"), ("label_preserving_step", "check_label_preserving_step"),
            ("query_counting", "check_decision_accuracy")]


@pytest.mark.parametrize("module,name", CHECKERS)
def test_a_learners_exception_becomes_a_verdict(module: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    check = getattr(importlib.import_module(f"labkit.exercises.{module}"), name)

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
