"""ZSKD (Data Impressions): class similarity, Dirichlet targets, crafting, access, the method end to end."""
from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import dataset_info
from labkit.core.errors import AccessDenied, ConfigError, UnknownNameError
from labkit.core.metrics import entropy
from labkit.core.profiles import get_profile
from labkit.core.train import split_holdout
from labkit.methods.base import MethodData, RunContext
from labkit.methods.zskd import ZSKD, ZSKDConfig, impression_transfer_set
from labkit.studies.runner import run_method
from labkit.synthesis.augment import border_blur_copies
from labkit.synthesis.impressions import (
    DataImpressionSynthesizer,
    ImpressionSettings,
    class_similarity,
    crafting_convergence,
    dirichlet_concentration,
    dirichlet_targets,
    final_linear,
    impression_plan,
    minmax_groups,
    relabelled_copies,
    teacher_class_similarity,
)

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


@pytest.mark.parametrize("parametrisation", ["clamp", "sigmoid", "minmax"])
def test_crafting_lowers_loss_toward_targets(teacher, parametrisation: str) -> None:
    box = white_box(teacher)
    n, iters = 30, 20
    settings = ImpressionSettings(iterations=iters, lr=0.05, batch_size=16, snapshots=4,
                                  parametrisation=parametrisation)
    synth = DataImpressionSynthesizer(box, settings, seed=3)
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


def test_white_box_required(teacher) -> None:
    info = dataset_info("fashion-mnist")
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", info, progress=False)
    for access in ("score", "decision"):
        box = white_box(teacher, access)
        with pytest.raises(AccessDenied, match="white-box"):
            DataImpressionSynthesizer(box, ImpressionSettings(iterations=2))
        with pytest.raises(AccessDenied, match="white-box"):
            ZSKD(impressions=10, iterations=2).distill(box, MethodData(info), ctx)
        assert box.queries == 0
    with pytest.raises(AccessDenied, match="no teacher"):
        ZSKD().distill(None, MethodData(info), ctx)


def test_config_profiles_and_overrides() -> None:
    paper = ZSKDConfig.for_profile("paper")
    assert paper.impressions == 48_000 and paper.iterations == 1500 and paper.tau == 20.0 and paper.craft_lr == 0.01
    assert paper.ingredients == ("impressions",) and not paper.uses("relabelled-copies")  # the paper's recipe
    assert ZSKDConfig.for_profile("paper", "mnist").impressions == 24_000
    assert ZSKDConfig.for_profile("paper", "cifar10").impressions == 40_000
    laptop = ZSKDConfig.for_profile("laptop")
    assert (laptop.impressions, laptop.iterations, laptop.copies, laptop.lr) == (9000, 16, 1, 1e-2)
    assert laptop.ingredients == ("impressions", "relabelled-copies")
    cfg = ZSKDConfig.for_profile("smoke", impressions=50, betas=[2.0], copy_box=[0.5, 1], lr=None)
    assert cfg.impressions == 50 and cfg.betas == (2.0,) and cfg.copy_box == (0.5, 1.0) and cfg.lr == 5e-3
    with pytest.raises(ConfigError, match="parametrisation"):
        ZSKDConfig.for_profile("smoke", parametrisation="tanh")
    with pytest.raises(ConfigError, match="betas"):
        ZSKDConfig.for_profile("smoke", betas=(1.0, -0.1))
    with pytest.raises(ConfigError, match="leave out"):  # copies off is spelled by the ingredient list
        ZSKDConfig.for_profile("smoke", copies=0)
    assert ZSKDConfig.for_profile("smoke", copies=0, ingredients=("impressions",)).copies == 0
    with pytest.raises(ConfigError, match="keep 'impressions'"):
        ZSKDConfig.for_profile("smoke", ingredients=("relabelled-copies",))
    with pytest.raises(UnknownNameError):  # the removed relabel-augmented path is refused by name
        ZSKDConfig.for_profile("smoke", augment=True)


def test_impression_settings_come_from_the_crafting_fields() -> None:
    """The synthesizer crafts at craft_lr and craft_batch, never at the student's lr and batch size."""
    cfg = ZSKDConfig.for_profile("laptop", beta_mode="authors", parametrisation="sigmoid")
    s = cfg.impression_settings()
    assert (s.iterations, s.lr, s.batch_size, s.tau, s.betas) == (16, cfg.craft_lr, 3000, 20.0, (1.0, 0.1))
    assert (s.lr, s.batch_size) != (cfg.lr, cfg.batch_size)
    assert (s.parametrisation, s.beta_mode, s.snapshots) == ("sigmoid", "authors", cfg.snapshots)
    assert ImpressionSettings() == ImpressionSettings(1500, 0.01, 4096, 20.0, (1.0, 0.1), "clamp", 12, "paper")
    with pytest.raises(ValueError, match="parametrisation"):
        ImpressionSettings(parametrisation="tanh")
    with pytest.raises(UnknownNameError):
        ImpressionSettings(beta_mode="both")


def test_cli_options_reach_the_method() -> None:
    from labkit.studies.cli import build_parser

    args = build_parser().parse_args(["run", "zskd", "--impressions", "64", "--iterations", "5", "--ingredients",
                                      "impressions", "--betas", "1.0", "0.1", "--profile", "smoke"])
    own = {a: getattr(args, a) for a in args._method_opts}
    assert own["impressions"] == 64 and own["iterations"] == 5 and own["ingredients"] == ["impressions"]
    assert own["betas"] == [1.0, 0.1] and own["copies"] is None
    cfg = ZSKDConfig.for_profile("smoke", **{k: v for k, v in own.items() if v is not None})
    assert cfg.betas == (1.0, 0.1) and cfg.ingredients == ("impressions",)
    assert isinstance(args, argparse.Namespace)


def test_transfer_set_keeps_copies_of_holdout_in_the_holdout(teacher) -> None:
    box = white_box(teacher)
    n = 40
    images = torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0))
    soft = torch.softmax(torch.randn(n, 10, generator=torch.Generator().manual_seed(1)), dim=1)
    cfg = ZSKDConfig.for_profile("smoke", copies=2, holdout_fraction=0.25, student_tau=20.0)  # no re-tempering
    ts = impression_transfer_set(box, images, soft, cfg, seed=0)
    assert ts.target_kind == "probabilities" and ts.loss_name == "soft-kd" and ts.ingredient_names() == [
        "impressions", "relabelled-copies"]
    assert ts.holdout is not None and ts.holdout_size == 10 * 3 and len(ts) == 30 * 3 and ts.size == 90
    assert [(i.rows, i.holdout_rows) for i in ts.ingredients] == [(30, 10), (60, 20)]
    assert ts.source is not None and ts.source.tolist() == [0] * 30 + [1] * 60  # impressions first, then copies
    assert box.queries_by_phase == {"relabel copies": 2 * n}
    # the training impressions are those not held out, with their stored soft labels; the holdout is labelled top-1
    keep, hold = split_holdout(n, 0.25, 0)
    assert torch.equal(ts.x[:30], images[keep]) and torch.equal(ts.targets[0][:30], soft[keep])
    assert torch.equal(ts.holdout[0][:10], images[hold]) and torch.equal(ts.holdout[1][:10], soft[hold].argmax(1))
    only = impression_transfer_set(box, images, soft, ZSKDConfig.for_profile("smoke", ingredients=("impressions",)))
    assert only.ingredient_names() == ["impressions"] and only.size == 36 and only.holdout_size == 4
    assert box.queries == 2 * n  # no copies, no new queries


@pytest.mark.slow
def test_zskd_end_to_end_counts_every_query(fmnist_available) -> None:
    n, iters = 40, 4
    run = run_method("zskd", profile="smoke", device="cpu", progress=False, impressions=n, iterations=iters,
                     epochs=2, craft_batch=25)
    rec = run.record
    by_phase = rec.queries_by_phase
    assert by_phase == {"craft impressions": n * iters, "label impressions": n, "relabel copies": n}
    assert rec.queries == sum(by_phase.values())
    assert rec.ingredients == {"impressions": {"rows": 36, "holdout_rows": 4, "queries": n * iters + n},
                               "relabelled-copies": {"rows": 36, "holdout_rows": 4, "queries": n}}
    assert rec.transfer_set_size == 72 and rec.holdout_size == 8  # training impressions + their copies
    assert rec.loss == "soft-kd" and rec.target_kind == "probabilities"
    assert rec.access == "white" and rec.extras["impressions"] == n
    assert "holdout" in rec.selection and rec.val_acc is not None and 0.0 <= rec.student_acc <= 1.0
    assert run.artifacts["config"].copies == 1 and len(run.artifacts["synthesis"]) == n


@pytest.mark.slow
def test_zskd_without_relabelled_copies(fmnist_available) -> None:
    n, iters = 40, 4
    run = run_method("zskd", profile="smoke", device="cpu", progress=False, impressions=n, iterations=iters,
                     epochs=2, craft_batch=25, ingredients=("impressions",))
    rec = run.record
    assert rec.queries_by_phase == {"craft impressions": n * iters, "label impressions": n}
    assert rec.ingredients == {"impressions": {"rows": 36, "holdout_rows": 4, "queries": n * iters + n}}
    assert rec.transfer_set_size == 36 and rec.holdout_size == 4
    assert rec.selection == "teacher-labelled holdout of 4 impressions"
    assert rec.extras["config"]["ingredients"] == ["impressions"]


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
    with pytest.raises(ConfigError, match="copy_box"):
        ZSKDConfig.for_profile("smoke", copy_box=(0.0, 1.0))


def test_exercise_checker() -> None:
    from labkit.teaching.exercises.class_similarity import check_class_similarity

    assert not check_class_similarity(lambda w: None).attempted
    assert check_class_similarity(class_similarity).passed

    def raw_cosine(w: torch.Tensor) -> torch.Tensor:
        u = torch.nn.functional.normalize(w, dim=1)
        return u @ u.T

    bad = check_class_similarity(raw_cosine)
    assert bad.attempted and not bad.passed and "min-max" in bad.messages[0]


def test_minmax_groups_rescale_each_group_by_its_own_extremes() -> None:
    x = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 2.0, 5.0, -1.0, 3.0)])
    x[1, 0, 0, 0] = 4.0
    out = minmax_groups(x, 2)  # groups: images 0-1, 2-3, 4 (alone: a constant group becomes 0)
    assert torch.allclose(out[:2].flatten(), torch.tensor([0, 0, 0, 0, 1, .5, .5, .5]))
    assert torch.allclose(out[2:4].flatten(), torch.tensor([1.0] * 4 + [0.0] * 4)) and float(out[4].abs().max()) == 0
    assert out.shape == x.shape


def test_warm_started_chains_continue_each_link_from_the_last(teacher) -> None:
    box = white_box(teacher)
    settings = ImpressionSettings(iterations=2, lr=1e-6, batch_size=64, snapshots=2, warm_start=True, chain_batch=2,
                                  parametrisation="minmax")
    synth = DataImpressionSynthesizer(box, settings, seed=1)
    assert synth.chain_layout(50) == (20, 2, 2)  # 10 classes x 2 betas, 2 per link, 2 links: 80 crafted
    res = synth.synthesize(50, progress=False)
    assert res.images.shape == (50, *SHAPE) and res.extras["crafted"] == 80 and res.extras["chains"] == [20, 2, 2]
    assert box.queries_by_phase == {"craft impressions": 80 * 2, "label impressions": 50}  # each crafted in one link
    assert res.extras["loss_history"].shape == (2 * 2 + 1,)
    classes, betas = res.extras["classes"], res.extras["betas"]
    # impressions 0..19 are link 1 of the 20 chains (one per class and beta); 20..39 fill link 1's second places,
    # 40..49 open link 2. With a tiny lr, a link-2 impression is its chain's link-1 impression rescaled, and a
    # min-max rescale of an already rescaled group is nearly the identity.
    for i in range(40, 50):
        same = [j for j in range(20) if classes[j] == classes[i] and betas[j] == betas[i]]
        assert len(same) == 1
        first_link = [j for j in range(40) if classes[j] == classes[i] and betas[j] == betas[i]]
        assert any(float((res.images[i] - res.images[j]).abs().max()) < 1e-3 for j in first_link)
    assert float((res.images[0] - res.images[1]).abs().max()) > 0.5  # different chains: different noise


def test_convergence_reports_the_floor_the_match_and_saturation() -> None:
    targets = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    logits = torch.log(targets) * 20  # softmax(logits / 20) == targets: the loss is at its floor
    images = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.3, 0.999995]])
    conv = crafting_convergence(images, logits, targets, torch.tensor([0, 1, 1]), torch.tensor([1.0, 1.0, 0.1]), 20.0)
    assert conv["gap_to_floor"] == pytest.approx(0.0, abs=1e-3) and conv["final_loss"] == conv["loss_floor"]
    assert conv["saturated_pixels"] == pytest.approx(0.5)
    assert conv["target_argmax_is_class_by_beta"] == {"0.1": 1.0, "1": 0.5}
    assert conv["teacher_argmax_matches_target"] == 1.0
    assert conv["gap_to_floor_by_beta"] == {"0.1": pytest.approx(0.0, abs=1e-3), "1": pytest.approx(0.0, abs=1e-3)}
    off = crafting_convergence(images, torch.zeros(3, 2), targets, torch.tensor([0, 1, 1]),
                               torch.tensor([1.0, 1.0, 0.1]), 20.0)  # uniform answers: only the 0.5/0.5 row fits
    gaps = off["gap_to_floor_by_beta"]
    assert gaps["1"] > 0 and gaps["0.1"] > gaps["1"]


def test_the_authors_augmentation_set_has_every_copy_they_make() -> None:
    from labkit.synthesis.augment import (
        ZSKD_COPIES_PER_IMAGE,
        flips,
        rotations,
        shifts_filled_white,
        zskd_authors_augmentations,
    )

    x = torch.zeros(3, 1, 28, 28)
    x[:, :, 10:18, 4:12] = 0.5
    out = zskd_authors_augmentations(x)
    assert ZSKD_COPIES_PER_IMAGE == 106 and out.shape == (3 * 106, 1, 28, 28)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 and torch.equal(out[:3], x)
    left = shifts_filled_white(x)[:3]  # 28 - ceil(0.8 * 28) = 5 pixels left, the vacated strip white
    assert torch.equal(left[..., :, :23], x[..., :, 5:]) and float(left[..., :, 23:].min()) == 1.0
    assert torch.equal(flips(x)[3:6], x.flip(-2))
    quarter = rotations(x, (90.0,))
    assert (quarter != torch.rot90(x, 1, (-2, -1))).float().mean() < 0.01  # nearest sampling: the same pixels


def test_only_the_drawn_copies_are_built_and_they_equal_the_whole_sets_rows() -> None:
    from labkit.synthesis.augment import (
        ZSKD_COPIES_PER_IMAGE,
        zskd_authors_augmentations,
        zskd_authors_picked_copies,
    )

    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    whole = zskd_authors_augmentations(x).unflatten(0, (ZSKD_COPIES_PER_IMAGE, 4))  # copy-major
    every = zskd_authors_picked_copies(x, torch.arange(ZSKD_COPIES_PER_IMAGE).repeat(4, 1))
    assert torch.equal(every, whole.transpose(0, 1).flatten(0, 1))  # every copy, bit for bit, impression-major
    picks = torch.tensor([[105, 0, 40], [3, 3, 77], [21, 22, 19], [34, 74, 104]])
    some = zskd_authors_picked_copies(x, picks).unflatten(0, (4, 3))
    assert all(torch.equal(some[i, j], whole[picks[i, j], i]) for i in range(4) for j in range(3))
    with pytest.raises(ValueError, match="copy numbers"):
        zskd_authors_picked_copies(x, torch.tensor([[106]] * 4))


def test_the_augmentation_hook_draws_its_copies_per_impression_and_counts_each_query() -> None:
    from labkit.methods.zskd import relabelled_augmentations
    from labkit.synthesis.augment import ZSKD_COPIES_PER_IMAGE, zskd_authors_augmentations

    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    box = BlackBox(model, access="white", input_shape=(1, 28, 28), num_classes=10, device="cpu")
    x = torch.rand(5, 1, 28, 28)
    full = zskd_authors_augmentations(x)
    xa, (soft,) = relabelled_augmentations(box, 20.0)(x, (), torch.Generator().manual_seed(0))
    assert torch.equal(xa, full) and box.queries == 5 * ZSKD_COPIES_PER_IMAGE
    xs, (soft_s,) = relabelled_augmentations(box, 20.0, per_step=3)(x, (), torch.Generator().manual_seed(0))
    assert xs.shape == (5 * 3, 1, 28, 28) and box.queries == 5 * ZSKD_COPIES_PER_IMAGE + 15
    assert torch.allclose(soft_s.sum(1), torch.ones(15)) and float(soft_s.max()) < 1  # τ-softened answers
    rows = full.reshape(ZSKD_COPIES_PER_IMAGE, 5, -1)  # augmentation-major
    for k, copy in enumerate(xs.reshape(15, -1)):  # impression k // 3, three distinct copies of its own
        i = k // 3
        assert any(torch.equal(copy, rows[a, i]) for a in range(ZSKD_COPIES_PER_IMAGE)), k
    again, _ = relabelled_augmentations(box, 20.0, per_step=3)(x, (), torch.Generator().manual_seed(1))
    assert not torch.equal(again, xs)  # fresh at every step: another generator state, other copies
    with pytest.raises(ConfigError, match="augmentations_per_step"):
        ZSKDConfig.for_profile("smoke", augmentations_per_step=107).check()


@pytest.mark.slow
def test_the_authors_code_variant_relabels_every_batch_at_every_step(fmnist_available) -> None:
    n, iters = 40, 2
    run = run_method("zskd", profile="smoke", device="cpu", progress=False, variant="authors-code", impressions=n,
                     iterations=iters, epochs=1, batch_size=12, chain_batch=2)
    rec = run.record
    cfg = run.artifacts["config"]
    assert (cfg.parametrisation, cfg.beta_mode, cfg.warm_start, cfg.craft_lr) == ("minmax", "authors", True, 1e-3)
    crafted = rec.extras["impressions_crafted"]
    assert crafted == 40 and rec.extras["chains"] == [20, 2, 1]
    assert rec.queries_by_phase == {"craft impressions": crafted * iters, "label impressions": n,
                                    "relabel authors' augmentations": 36 * 8}  # one epoch of 36 impressions
    assert cfg.augmentations_per_step == 8  # the smoke profile's 8 of the 106 copies, drawn afresh at every step
    assert rec.ingredients["authors-augmentation"] == {"rows": 0, "holdout_rows": 0, "queries": 36 * 8}
    conv = rec.extras["crafting_convergence"]
    assert conv["final_loss"] >= conv["loss_floor"] - 1e-4 and 0 <= conv["saturated_pixels"] <= 1
