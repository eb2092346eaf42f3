"""The fit loop: validation selection, history, seeding, NaN handling, evaluation helpers."""
import pytest
import torch
from torch import nn

from labkit.core.data import load_dataset
from labkit.core.errors import NonFiniteError
from labkit.core.losses import build_loss
from labkit.core.metrics import accuracy, agreement
from labkit.core.models import build_model
from labkit.core.train import fit, random_affine, split_holdout


@pytest.fixture(scope="module")
def blobs():
    return load_dataset("toy2d-blobs-3", "train"), load_dataset("toy2d-blobs-3", "val")


def test_fit_learns_and_keeps_the_best_validation_epoch(blobs):
    train, val = blobs
    torch.manual_seed(0)
    model = build_model("mlp", 2, 3)
    res = fit(model, train.x, train.y, build_loss("ce"), val=val, epochs=8, lr=1e-2, device="cpu", progress=False)
    assert len(res.history) == 8 and {"epoch", "train_loss", "val_acc", "lr", "seconds"} <= set(res.history[0])
    best = max(h["val_acc"] for h in res.history)
    assert res.best_val_acc == pytest.approx(best)
    assert res.history[res.best_epoch - 1]["val_acc"] == pytest.approx(best)
    assert accuracy(model, val.x, val.y) == pytest.approx(best)  # the best weights were restored
    assert best > 0.8


def test_epoch_states_are_kept_and_never_choose(blobs):
    """Every epoch's weights can be kept (the runner's papers'-protocol figure); the selection, the weights and the
    random stream are those of a run without them."""
    train, val = blobs
    runs = []
    for keep in (False, True):
        torch.manual_seed(0)
        model = build_model("mlp", 2, 3)
        res = fit(model, train.x, train.y, build_loss("ce"), val=val, epochs=4, lr=1e-2, device="cpu",
                  progress=False, keep_epoch_states=keep)
        runs.append((res, torch.cat([p.flatten() for p in model.parameters()])))
    (plain, w_plain), (kept, w_kept) = runs
    assert plain.epoch_states == [] and len(kept.epoch_states) == 4
    assert kept.best_epoch == plain.best_epoch and torch.equal(w_plain, w_kept)
    best = kept.epoch_states[kept.best_epoch - 1]
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())  # the kept epoch is the model's


def test_fit_is_seeded(blobs):
    train, _ = blobs
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = build_model("mlp", 2, 3)
        fit(m, train.x, train.y, build_loss("ce"), epochs=2, device="cpu", seed=5, progress=False)
        outs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_nan_loss_is_a_clear_error_and_keeps_good_weights(blobs):
    train, val = blobs
    model = build_model("mlp", 2, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def nan_loss(logits, y):
        return logits.sum() * float("nan")

    with pytest.raises(NonFiniteError, match="NaN"):
        fit(model, train.x, train.y, nan_loss, val=val, epochs=1, device="cpu", progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_soft_targets_and_multiple_target_tensors(blobs):
    train, val = blobs
    soft = torch.nn.functional.one_hot(train.y, 3).float() * 0.8 + 0.2 / 3
    model = build_model("mlp", 2, 3)
    res = fit(model, train.x, (soft, train.y), build_loss("soft-kd", tau=1.0, alpha=0.5), val=val, epochs=3,
              lr=1e-2, device="cpu", progress=False)
    assert res.best_val_acc > 0.6


def test_agreement_and_holdout():
    a, b = nn.Linear(2, 3), nn.Linear(2, 3)
    x = torch.rand(50, 2)
    assert agreement(a, a, x) == 1.0 and 0 <= agreement(a, b, x) <= 1
    keep, hold = split_holdout(100, 0.1, seed=0)
    assert len(hold) == 10 and len(keep) == 90 and not set(keep.tolist()) & set(hold.tolist())


def test_random_affine_keeps_shape_and_range():
    x = torch.rand(16, 1, 28, 28)
    y = random_affine(2, 10, flip=True)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1 and not torch.equal(x, y)
