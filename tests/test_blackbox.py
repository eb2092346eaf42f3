"""The black box is a real boundary: what each access level returns, exact counting, budgets, input checks."""
import pickle

import pytest
import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.errors import AccessDenied, InvalidQueryError, QueryBudgetExceeded, UnknownNameError


class CountingModel(nn.Module):
    """A tiny classifier that counts the images it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.seen = 0
        self.train()  # deliberately left in training mode: the box must switch it to eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training, "the box must query in eval mode"
        self.seen += x.shape[0]
        return self.lin(x.flatten(1))


def make_box(access="decision", budget=None, **kw):
    torch.manual_seed(0)
    model = CountingModel()
    return model, BlackBox(model, access=access, budget=budget, input_shape=(1, 2, 2), num_classes=3, **kw)


def test_decision_box_returns_only_class_ids():
    model, box = make_box("decision")
    x = torch.rand(10, 1, 2, 2, requires_grad=True)
    out = box(x)
    assert out.dtype == torch.int64 and out.shape == (10,)
    assert not out.requires_grad and out.grad_fn is None
    assert torch.equal(out, model.lin(x.flatten(1)).argmax(1))


def test_decision_box_leaks_no_probabilities_logits_gradients_or_parameters():
    model, box = make_box("decision")
    with pytest.raises(AccessDenied, match="class ids"):
        _ = box.module
    with pytest.raises(AccessDenied):
        pickle.dumps(box)
    public = []
    for name in dir(box):
        if name.startswith("_"):
            continue
        try:
            public.append(getattr(box, name))
        except AccessDenied:
            pass
    for value in public:
        assert not isinstance(value, nn.Module)
        assert not (isinstance(value, torch.Tensor) and torch.is_floating_point(value))
    # no attribute of the instance is the model or one of its parameters
    params = {id(p) for p in model.parameters()} | {id(model)}
    assert not any(id(v) in params for v in vars(box).values())
    # gradients cannot flow back through an answer
    x = torch.rand(4, 1, 2, 2, requires_grad=True)
    assert box(x).grad_fn is None
    # and the teacher's weights are frozen
    assert all(not p.requires_grad for p in model.parameters())


def test_score_box_returns_detached_probabilities():
    model, box = make_box("score")
    x = torch.rand(6, 1, 2, 2, requires_grad=True)
    p = box(x)
    assert p.dtype == torch.float32 and not p.requires_grad
    assert torch.allclose(p.sum(1), torch.ones(6))
    assert torch.allclose(p, torch.softmax(model.lin(x.flatten(1)), 1), atol=1e-6)
    with pytest.raises(AccessDenied):
        _ = box.module


def test_white_box_gives_logits_input_gradients_and_module():
    model, box = make_box("white")
    x = torch.rand(3, 1, 2, 2, requires_grad=True)
    logits = box(x)
    logits.sum().backward()
    assert x.grad is not None and box.module is model
    assert box.queries == 3


def test_query_counts_are_exact_per_image_and_batched():
    model, box = make_box("decision", max_batch=7)
    for n in (1, 5, 20, 64):
        box(torch.rand(n, 1, 2, 2))
    assert box.queries == model.seen == 90
    assert [e.n for e in box.query_log] == [1, 5, 20, 64] and box.query_log[-1].total == 90


def test_phases_are_logged():
    _, box = make_box("score")
    with box.phase("a"):
        box(torch.rand(3, 1, 2, 2))
    box(torch.rand(2, 1, 2, 2), phase="b")
    box(torch.rand(1, 1, 2, 2))
    assert box.queries_by_phase == {"a": 3, "b": 2, "default": 1}


def test_budget_refuses_before_answering_and_keeps_the_counter():
    model, box = make_box("decision", budget=10)
    box(torch.rand(8, 1, 2, 2))
    with pytest.raises(QueryBudgetExceeded, match="8 of 10 queries already spent") as err:
        box(torch.rand(3, 1, 2, 2))
    assert err.value.spent == 8 and err.value.requested == 3
    assert box.queries == 8 and model.seen == 8 and box.remaining == 2
    box(torch.rand(2, 1, 2, 2))
    assert box.remaining == 0


@pytest.mark.parametrize("bad,match", [
    (torch.rand(1, 2, 2), "unsqueeze"),
    (torch.rand(4, 3, 2, 2), "channel"),
    (torch.rand(4, 1, 3, 3), "shape"),
    (torch.randint(0, 255, (4, 1, 2, 2)), "float"),
    (torch.rand(4, 1, 2, 2) * 3, r"\[0, 1\]|\[0.0, 1.0\]"),
    (torch.full((4, 1, 2, 2), float("nan")), "NaN"),
    (torch.zeros(0, 1, 2, 2), "Empty"),
    ([[0.0]], "torch.Tensor"),
])
def test_bad_queries_are_clear_errors_and_not_counted(bad, match):
    model, box = make_box("decision")
    with pytest.raises(InvalidQueryError, match=match):
        box(bad)
    assert box.queries == 0 and model.seen == 0


def test_unknown_access_level():
    with pytest.raises(UnknownNameError, match="decision, score, white"):
        BlackBox(nn.Linear(2, 2), access="grey")
