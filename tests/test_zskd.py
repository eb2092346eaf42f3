"""ZSKD (Data Impressions): class similarity, Dirichlet targets, crafting, access, the method end to end."""
from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from labkit.blackbox import BlackBox
from labkit.data import dataset_info
from labkit.errors import AccessDenied
from labkit.methods.base import MethodData, RunContext, run_method
from labkit.methods.zskd import (ZSKD, DataImpressionSynthesizer, ZSKDConfig, border_blur_copies, class_similarity,
                                 dirichlet_concentration, dirichlet_targets, final_linear, impression_plan,
                                 relabelled_copies, retemper, teacher_class_similarity)
from labkit.metrics import entropy
from labkit.profiles import get_profile

SHAPE = (1, 28, 28)


def white_box(teacher, access: str = "white") -> BlackBox:
    return BlackBox(teacher.model, access=access, input_shape=SHAPE, num_classes=10, device="cpu")


def test_class_similarity_is_row_normalised_cosine() -> None:
    w = torch.randn(6, 12, generator=torch.Generator().manual_seed(0))
    sim = class_similarity(w)
    cos = torch.nn.functional.cosine_similarity(w[:, None, :], w[None, :, :], dim=2)
    lo, hi = cos.min(1, keepdim=True).values, cos.max(1, keepdim=True).values
    assert torch.allclose(sim, (cos - lo) / (hi - lo), atol=1e-5)
    assert torch.allclose(sim.diagonal(), torch.ones(6))
    assert torch.allclose(sim.min(1).values, torch.zeros(6), atol=1e-6)
    # scaling a class's weights changes dot products but not cosine similarity
    w2 = w.clone()
    w2[2] *= 7.0
    assert torch.allclose(class_similarity(w2), sim, atol=1e-5)


def test_final_linear_found_generically() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert final_linear(mlp) is mlp[3]
    assert final_linear(mlp, num_classes=3) is mlp[3]
    with pytest.raises(ValueError, match="nn.Linear"):
        final_linear(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_teacher_similarity_reads_final_layer(teacher) -> None:
    box = white_box(teacher)
    sim = teacher_class_similarity(box)
    assert sim.shape == (10, 10) and box.queries == 0
    assert torch.allclose(sim, class_similarity(final_linear(teacher.model).weight))


def test_beta_changes_concentration() -> None:
    """Smaller β → peakier Dirichlet samples → lower mean entropy (β is applied after the normalisation)."""
    sim = class_similarity(torch.randn(10, 84, generator=torch.Generator().manual_seed(1)))
    classes = torch.arange(10).repeat(200)
    entropies = []
    for beta in (10.0, 1.0, 0.1, 0.01):
        y = dirichlet_targets(sim, classes, torch.full((classes.numel(),), beta), seed=0)
        assert torch.isfinite(y).all() and torch.allclose(y.sum(1), torch.ones(len(y)), atol=1e-5)
        entropies.append(float(entropy(y).mean()))
    assert all(a > b for a, b in zip(entropies, entropies[1:])), entropies
    # β really scales the concentration: it is not cancelled by a later normalisation
    one = dirichlet_concentration(sim, classes[:10], torch.ones(10))
    tenth = dirichlet_concentration(sim, classes[:10], torch.full((10,), 0.1))
    assert torch.allclose(tenth, 0.1 * one)


def test_impression_plan_balances_classes_and_betas() -> None:
    classes, betas = impression_plan(40, 10, (1.0, 0.1))
    assert torch.equal(torch.bincount(classes), torch.full((10,), 4))
    assert int((betas == 1.0).sum()) == 20 and int((betas == 0.1).sum()) == 20
    for k in range(10):
        assert sorted(round(b, 4) for b in betas[classes == k].tolist()) == [0.1, 0.1, 1.0, 1.0]


@pytest.mark.parametrize("parametrisation", ["clamp", "sigmoid"])
def test_crafting_lowers_loss_toward_targets(teacher, parametrisation: str) -> None:
    box = white_box(teacher)
    n, iters = 30, 20
    synth = DataImpressionSynthesizer(box, iterations=iters, lr=0.05, batch_size=16, snapshots=4,
                                      parametrisation=parametrisation, seed=3)
    res = synth.synthesize(n, progress=False)
    hist = res.extras["loss_history"]
    assert hist.shape == (iters + 1,)
    assert float(hist[-1]) < 0.8 * float(hist[0]), hist.tolist()
    # the loss can never go below the targets' entropy (cross-entropy ≥ entropy)
    assert float(hist[-1]) >= float(entropy(res.extras["dirichlet_targets"]).mean()) - 1e-4
    assert res.images.shape == (n, *SHAPE) and float(res.images.min()) >= 0 and float(res.images.max()) <= 1
    assert torch.allclose(res.targets.sum(1), torch.ones(n), atol=1e-5)
    # every crafting step queries every image once; one more pass labels them
    assert box.queries == n * iters + n
    assert box.queries_by_phase == {"craft impressions": n * iters, "label impressions": n}
    steps = [s.step for s in res.snapshots]
    assert steps[0] == 0 and steps[-1] == iters and len(res.snapshots[0].images) == 10
    assert synth.bank_size == n


def test_white_box_required(teacher) -> None:
    info = dataset_info("fashion-mnist")
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", info, progress=False)
    for access in ("score", "decision"):
        box = white_box(teacher, access)
        with pytest.raises(AccessDenied, match="white-box"):
            DataImpressionSynthesizer(box, iterations=2)
        with pytest.raises(AccessDenied, match="white-box"):
            ZSKD(impressions=10, iterations=2).distill(box, MethodData(info), ctx)
        assert box.queries == 0
    with pytest.raises(AccessDenied, match="no teacher"):
        ZSKD().distill(None, MethodData(info), ctx)


def test_config_profiles_and_overrides() -> None:
    paper = ZSKDConfig.for_profile(get_profile("paper"))
    assert paper.impressions == 48_000 and paper.iterations == 1500 and paper.tau == 20.0
    assert paper.distill_tau == 20.0  # the paper distils at the crafting temperature
    cooler = ZSKDConfig.for_profile(get_profile("laptop"), student_tau=4.0)
    assert cooler.tau == 20.0 and cooler.distill_tau == 4.0
    with pytest.raises(ValueError, match="student_tau"):
        ZSKDConfig.for_profile(get_profile("smoke"), student_tau=0.0)
    assert ZSKDConfig.for_profile(get_profile("paper"), "mnist").impressions == 24_000
    cfg = ZSKDConfig.for_profile(get_profile("smoke"), impressions=50, betas=[2.0], augment=False, lr=None)
    assert cfg.impressions == 50 and cfg.betas == (2.0,) and cfg.augment is False
    with pytest.raises(ValueError, match="parametrisation"):
        ZSKDConfig.for_profile(get_profile("smoke"), parametrisation="tanh")


def test_retemper_is_exact() -> None:
    logits = 6 * torch.randn(40, 10, generator=torch.Generator().manual_seed(3))
    at20 = torch.softmax(logits / 20, dim=1)
    assert torch.allclose(retemper(at20, 20.0, 4.0), torch.softmax(logits / 4, dim=1), atol=1e-5)
    assert retemper(at20, 20.0, 20.0) is at20
    # a lower temperature sharpens: the mean entropy falls
    assert float(entropy(retemper(at20, 20.0, 2.0)).mean()) < float(entropy(at20).mean())


def test_cli_options_reach_the_method() -> None:
    from labkit.cli import build_parser

    args = build_parser().parse_args(["run", "zskd", "--impressions", "64", "--iterations", "5", "--no-augment",
                                      "--betas", "1.0", "0.1", "--student-tau", "3", "--profile", "smoke"])
    own = {a: getattr(args, a) for a in args._method_opts}
    assert own["impressions"] == 64 and own["iterations"] == 5 and own["augment"] is False
    assert own["betas"] == [1.0, 0.1] and own["student_tau"] == 3.0
    assert isinstance(args, argparse.Namespace)


def test_zskd_end_to_end_counts_every_query(fmnist_available) -> None:
    n, iters = 40, 4
    run = run_method("zskd", profile="smoke", device="cpu", progress=False, impressions=n, iterations=iters,
                     epochs=2, craft_batch=25, augment=True)
    rec = run.record
    by_phase = rec.queries_by_phase
    assert by_phase["craft impressions"] == n * iters and by_phase["label impressions"] == n
    cfg = run.artifacts["config"]
    training = run.artifacts["training"]
    assert cfg.copies == 1 and by_phase["relabel copies"] == n * cfg.copies  # smoke adds one relabelled copy each
    assert training.train_size + training.holdout_size == n * (1 + cfg.copies)
    train_n = training.train_size  # rows trained on: impressions and their copies
    steps = -(-train_n // cfg.batch_size)
    per_epoch = sum(-(-min(cfg.batch_size, train_n - s * cfg.batch_size) * cfg.augment_fraction // 1)
                    for s in range(steps))
    assert by_phase["relabel augmented"] == cfg.epochs * per_epoch
    assert rec.queries == sum(by_phase.values())
    assert rec.access == "white" and rec.extras["impressions"] == n and rec.transfer_set_size == train_n
    assert "holdout" in rec.selection and rec.val_acc is not None
    assert 0.0 <= rec.student_acc <= 1.0


def test_border_blur_copies_and_their_labels(teacher) -> None:
    x = torch.rand(64, *SHAPE, generator=torch.Generator().manual_seed(0))
    copies = border_blur_copies(x, torch.Generator().manual_seed(1), box=(0.3, 0.6), blur=(0.5, 1.0))
    assert copies.shape == x.shape and float(copies.min()) >= 0 and float(copies.max()) <= 1
    # the kept box is at most 60% of the side: the outer rows and columns are black (blur reaches 3 px in)
    assert float(copies[..., :2, :].abs().max()) == 0 and float(copies[..., :, -2:].abs().max()) == 0
    assert float(copies.mean()) < float(x.mean())
    box = white_box(teacher)
    xc, pc = relabelled_copies(box, x, 2, 20.0, seed=0)
    assert xc.shape == (128, *SHAPE) and pc.shape == (128, 10) and torch.allclose(pc.sum(1), torch.ones(128))
    assert box.queries == 128 and box.queries_by_phase == {"relabel copies": 128}
    none_x, none_p = relabelled_copies(box, x, 0, 20.0)
    assert none_x.shape[0] == 0 and none_p.shape == (0, 10) and box.queries == 128
    assert ZSKDConfig.for_profile(get_profile("paper"), "fashion-mnist").copies == 0  # the paper's recipe
    with pytest.raises(ValueError, match="copy_box"):
        ZSKDConfig.for_profile(get_profile("smoke"), copy_box=(0.0, 1.0))


def test_exercise_checker() -> None:
    from labkit.exercises.class_similarity import check_class_similarity

    assert not check_class_similarity(lambda w: None).attempted
    assert check_class_similarity(class_similarity).passed

    def raw_cosine(w: torch.Tensor) -> torch.Tensor:
        u = torch.nn.functional.normalize(w, dim=1)
        return u @ u.T

    bad = check_class_similarity(raw_cosine)
    assert bad.attempted and not bad.passed and "min-max" in bad.messages[0]
