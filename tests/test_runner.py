"""The method runner enforces the boundary: a method gets a box at its access level and only its data."""
import pytest
import torch

from labkit.blackbox import BlackBox
from labkit.errors import QueryBudgetExceeded, UnknownNameError
from labkit.methods.base import (METHODS, DistillationMethod, DistillOutput, get_method, register_method,
                                 run_method)

SEEN = {}


@pytest.fixture
def spy_methods(tmp_path, monkeypatch):

    @register_method
    class SpyUnlabeled(DistillationMethod):
        name = "spy-unlabeled"
        access = "decision"
        data_access = "unlabeled"

        def distill(self, box, data, ctx):
            SEEN["box"], SEEN["data"] = box, data
            answers = box(data.unlabeled[:50])
            SEEN["dtype"] = answers.dtype
            student = ctx.new_student()
            return DistillOutput(student, 50, selection="none")

    @register_method
    class SpyNone(DistillationMethod):
        name = "spy-none"
        access = "score"
        data_access = "none"

        def distill(self, box, data, ctx):
            SEEN["none"] = data
            box(torch.rand(30, 2))
            box(torch.rand(30, 2))
            return DistillOutput(ctx.new_student(), 0)

    yield
    METHODS.pop("spy-unlabeled", None)
    METHODS.pop("spy-none", None)


def test_unlabeled_method_gets_a_decision_box_and_no_labels(spy_methods):
    run = run_method("spy-unlabeled", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False)
    box, data = SEEN["box"], SEEN["data"]
    assert isinstance(box, BlackBox) and box.access == "decision" and SEEN["dtype"] == torch.int64
    assert data.train is None and data.val is None and data.unlabeled is not None
    assert run.record.queries == 50 and run.record.access == "decision" and run.record.profile == "smoke"
    assert 0 <= run.record.student_acc <= 1 and 0 <= run.record.agreement <= 1


def test_data_free_method_gets_no_data_and_budget_is_enforced(spy_methods):
    run_method("spy-none", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, budget=60)
    assert SEEN["none"].train is None and SEEN["none"].unlabeled is None
    with pytest.raises(QueryBudgetExceeded, match="30 of 50"):
        run_method("spy-none", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, budget=50)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="Unknown method 'nosuch'.*kd"):
        get_method("nosuch")
