"""The method runner enforces the boundary: a method gets a box at its access level and only its data,
returns a transfer set, and the runner alone trains and evaluates the student."""
import pytest
import torch

from labkit.core.blackbox import BlackBox
from labkit.core.errors import ConfigError, QueryBudgetExceeded, UnknownNameError
from labkit.core.losses import build_loss
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import METHODS, DistillationMethod, get_method, register_method
from labkit.methods.kd import StudentConfig
from labkit.studies.runner import run_method

SEEN: dict[str, object] = {}


@pytest.fixture
def spy_methods(tmp_path, monkeypatch):

    @register_method
    class SpyUnlabeled(DistillationMethod[StudentConfig]):
        name = "spy-unlabeled"
        access = "decision"
        data_access = "unlabeled"
        config_class = StudentConfig

        def distill(self, box, data, ctx):
            SEEN["box"], SEEN["data"] = box, data
            with box.phase("label"):
                answers = box(data.unlabeled[:60])
            SEEN["dtype"] = answers.dtype
            cfg = self.config(ctx)
            source = torch.tensor([0] * 30 + [1] * 20)
            return TransferSet(data.unlabeled[:50], (answers[:50],), "class-ids", build_loss("ce"),
                               TrainRecipe(cfg.epochs, cfg.batch_size, cfg.lr),
                               [Ingredient("first", phases=("label",)), Ingredient("second")], source=source,
                               holdout=(data.unlabeled[50:60], answers[50:60]), selection="spy holdout")

    @register_method
    class SpyNone(DistillationMethod[StudentConfig]):
        name = "spy-none"
        access = "score"
        data_access = "none"
        config_class = StudentConfig

        def distill(self, box, data, ctx):
            SEEN["none"] = data
            x = torch.rand(30, 2)
            box(x)
            p = box(torch.rand(30, 2))
            return TransferSet(x, (p,), "probabilities", build_loss("soft-ce"), TrainRecipe(1, 16, 1e-3),
                               [Ingredient("noise", phases=("default",))])

    yield
    METHODS.pop("spy-unlabeled", None)
    METHODS.pop("spy-none", None)


def test_unlabeled_method_gets_a_decision_box_and_no_labels(spy_methods):
    run = run_method("spy-unlabeled", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False)
    box, data = SEEN["box"], SEEN["data"]
    assert isinstance(box, BlackBox) and box.access == "decision" and SEEN["dtype"] == torch.int64
    assert data.train is None and data.val is None and data.unlabeled is not None
    assert run.record.queries == 60 and run.record.access == "decision" and run.record.profile == "smoke"
    assert 0 <= run.record.student_acc <= 1 and 0 <= run.record.agreement <= 1
    # the transfer set's provenance reaches the record; its size excludes the holdout
    assert run.record.transfer_set_size == 50 and run.record.holdout_size == 10
    assert run.record.ingredients == {"first": {"rows": 30, "holdout_rows": 0, "queries": 60},
                                      "second": {"rows": 20, "holdout_rows": 0, "queries": 0}}
    assert run.record.loss == "ce" and run.record.target_kind == "class-ids" and run.record.selection == "spy holdout"
    assert 1 <= run.record.best_epoch <= 2 and len(run.history) == 2


def test_data_free_method_without_holdout_is_refused(spy_methods):
    with pytest.raises(ConfigError, match="teacher-labelled holdout"):
        run_method("spy-none", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, budget=60)
    assert SEEN["none"].train is None and SEEN["none"].unlabeled is None


def test_budget_is_enforced(spy_methods):
    with pytest.raises(QueryBudgetExceeded, match="30 of 50"):
        run_method("spy-none", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, budget=50)


def test_unknown_option_fails_before_any_work(spy_methods):
    with pytest.raises(UnknownNameError, match="Valid student options are: batch_size, epochs, lr"):
        run_method("spy-none", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, tua=3)
    with pytest.raises(ConfigError, match="epochs"):
        run_method("student", dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False, epochs=0)


def test_transfer_set_checks_its_rows():
    x = torch.rand(4, 2)
    with pytest.raises(ConfigError, match="rows"):
        TransferSet(x, (torch.zeros(3, dtype=torch.long),), "class-ids", build_loss("ce"), TrainRecipe(1, 2, 1e-3),
                    [Ingredient("a")])
    with pytest.raises(ConfigError, match="target kind"):
        TransferSet(x, (torch.zeros(4, dtype=torch.long),), "labels", build_loss("ce"), TrainRecipe(1, 2, 1e-3),
                    [Ingredient("a")])
    with pytest.raises(UnknownNameError, match="registered loss"):
        TransferSet(x, (torch.zeros(4, dtype=torch.long),), "class-ids", torch.nn.CrossEntropyLoss(),
                    TrainRecipe(1, 2, 1e-3), [Ingredient("a")])


def test_unknown_method_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="Unknown method 'nosuch'.*kd"):
        get_method("nosuch")


def test_records_carry_the_papers_best_test_epoch_beside_the_honest_figure(spy_methods):
    """best_test_epoch_acc: the max of the per-epoch test accuracy, never below the selected epoch's figure."""
    rec = run_method("spy-unlabeled", dataset="toy2d-blobs-3", profile="smoke", progress=False).record
    assert rec.best_test_epoch_acc is not None and rec.best_test_epoch_acc >= rec.student_acc - 1e-9
