"""FS-BBT: MixUp λ rules, the CVAE, exact query counts, the exercise, plots and the explorer widget."""
from __future__ import annotations

import pytest
import torch

from labkit.core.blackbox import BlackBox
from labkit.core.data import dataset_info, load_dataset
from labkit.core.errors import AccessDenied, UnknownNameError
from labkit.core.models import build_model
from labkit.core.profiles import get_profile
from labkit.methods.base import MethodData, RunContext
from labkit.methods.fsbbt import FSBBT, FSBBTConfig
from labkit.synthesis.cvae import (
    MLPCVAE,
    ConvCVAE,
    CVAESettings,
    CVAESynthesizer,
    build_cvae,
    cvae_loss,
    hybrid_latents,
    train_cvae,
)
from labkit.synthesis.mixup import (
    FewShotConfigError,
    MixUpSettings,
    MixUpSynthesizer,
    make_mixup_set,
    mixup_keep_mask,
    mixup_pairs,
    online_mixup_hook,
    round_lambdas,
    sample_mixup_lambdas,
)
from labkit.teaching.exercises.mixup import check_mixup_with_thresholds, reference_mixup_with_thresholds

# --------------------------------------------------------------------------- MixUp λ rules


def test_lambda_rounding_and_thresholds() -> None:
    raw = torch.tensor([0.049, 0.0549, 0.0551, 0.05, 0.06, 0.5, 0.94, 0.9449, 0.9451, 0.95, 0.999, 0.33333])
    lam = round_lambdas(raw)
    assert torch.allclose(lam, torch.tensor([0.05, 0.05, 0.06, 0.05, 0.06, 0.5, 0.94, 0.94, 0.95, 0.95, 1.0, 0.33],
                                            dtype=torch.float64))
    keep = mixup_keep_mask(lam)
    assert keep.tolist() == [False, False, True, False, True, True, True, True, False, False, False, True]
    # other thresholds are honoured the same way (strict inequalities)
    assert mixup_keep_mask(torch.tensor([0.2, 0.21, 0.79, 0.8]), 0.2, 0.8).tolist() == [False, True, True, False]


def test_sampled_lambdas_are_two_decimal_and_drop_about_eleven_percent() -> None:
    lam, keep = sample_mixup_lambdas(20_000, torch.Generator().manual_seed(0))
    assert torch.allclose(lam * 100, torch.round(lam * 100))  # exactly 2 decimals
    kept = lam[keep]
    assert bool((kept > 0.05 + 1e-9).all()) and bool((kept < 0.95 - 1e-9).all())
    assert not bool(((lam[~keep] > 0.05 + 1e-9) & (lam[~keep] < 0.95 - 1e-9)).any())
    # U(0,1) rounded: λ ≤ 0.05 ⇔ u < 0.055, λ ≥ 0.95 ⇔ u ≥ 0.945, so 11% are dropped
    assert abs(float((~keep).double().mean()) - 0.11) < 0.015


def test_mixup_set_counts_pairs_and_mixing() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 1, 6, 6, generator=g)
    ms = make_mixup_set(x, 400, torch.Generator().manual_seed(2))
    assert ms.drawn == 400 and ms.kept + ms.dropped == 400 and ms.kept == ms.images.shape[0]
    assert len(ms.all_lam) == 400 and ms.dropped == int((~mixup_keep_mask(ms.all_lam)).sum())
    assert bool((ms.first != ms.second).all()), "an image is never mixed with itself"
    lam = ms.lam.float().view(-1, 1, 1, 1)
    assert torch.allclose(ms.images, lam * x[ms.first] + (1 - lam) * x[ms.second], atol=1e-6)
    first, second = mixup_pairs(50, 100, torch.Generator().manual_seed(3))
    for r in range(2):  # every image is used once per round on each side
        assert sorted(first[50 * r:50 * (r + 1)].tolist()) == list(range(50))
        assert sorted(second[50 * r:50 * (r + 1)].tolist()) == list(range(50))
    with pytest.raises(FewShotConfigError):
        make_mixup_set(x, 10, low=0.6, high=0.4)


def test_mixup_synthesizer_answers_the_kept_mixes_in_one_call() -> None:
    """synthesize(n): the same draws as make_mixup_set from the same generator, one box call for the kept mixes."""
    x = torch.rand(30, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    box = BlackBox(teacher, access="score", input_shape=(1, 6, 6), num_classes=3)
    synth = MixUpSynthesizer(box, x, MixUpSettings(low=0.2, high=0.8), 3, generator=torch.Generator().manual_seed(2))
    res = synth.synthesize(100, progress=False)
    ms = make_mixup_set(x, 100, torch.Generator().manual_seed(2), 0.2, 0.8)
    assert torch.equal(res.images, ms.images) and torch.equal(res.extras["mixup"].lam, ms.lam)
    assert box.queries == box.queries_by_phase["mixup"] == ms.kept == len(res) and res.targets.shape == (ms.kept, 3)
    empty = synth.nothing()
    assert len(empty) == 0 and empty.targets.shape == (0, 3) and empty.extras["mixup"].drawn == 0
    assert box.queries == ms.kept  # the empty result asks nothing


def test_cvae_settings_come_from_the_cvae_fields_and_nothing_trains_no_cvae() -> None:
    cfg = FSBBTConfig.for_profile("smoke", cvae_lr=1e-2, latent_dim=3)
    assert cfg.cvae_settings() == CVAESettings(epochs=10, batch_size=128, lr=1e-2, latent_dim=3, ood_fraction=0.5,
                                               ood_range=3.0)
    assert cfg.mixup_settings() == MixUpSettings(low=0.05, high=0.95)
    x, y = _striped_images(20, 4)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4))
    box = BlackBox(teacher, access="score", input_shape=(1, 28, 28), num_classes=4)
    p = torch.nn.functional.one_hot(y, 4).float()
    synth = CVAESynthesizer(box, x, p, CVAESettings(epochs=1, latent_dim=3), 4, generator=torch.Generator())
    empty = synth.nothing()
    assert len(empty) == 0 and empty.extras["model"] is None and empty.extras["latents"].shape == (0, 3)
    assert synth.model is None and box.queries == 0
    res = synth.synthesize(6, progress=False)
    assert synth.model is res.extras["model"] and len(res.extras["history"]) == 1 and box.queries == 6
    assert res.extras["classes"].tolist() == [0, 1, 2, 3, 0, 1] and int(res.extras["is_ood"].sum()) == 3


def test_online_mixup_hook_keeps_probability_targets() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 5, 5)
    p = torch.softmax(torch.randn(64, 10), 1)
    xm, (pm,) = online_mixup_hook(1.0)(x, (p,), g)
    assert xm.shape == x.shape and torch.allclose(pm.sum(1), torch.ones(64), atol=1e-5)
    assert not torch.allclose(xm, x)
    x0, (p0,) = online_mixup_hook(0.0)(x, (p,), g)
    assert torch.equal(x0, x) and torch.allclose(p0, p)


# --------------------------------------------------------------------------- the CVAE


def _striped_images(n: int = 160, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c: a bright horizontal band at rows 6c..6c+4 of a 28×28 image, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.1
    for c in range(classes):
        x[y == c, :, 6 * c:6 * c + 4, :] = 0.9
    return x.clamp(0, 1), y


@pytest.mark.slow
def test_mlp_cvae_loss_falls_on_a_small_set() -> None:
    x, y = _striped_images()
    torch.manual_seed(0)
    model = MLPCVAE((1, 28, 28), 4)
    assert [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)] == [256, 128, 64]
    assert model.to_mu.out_features == 2 and model.encoder[0].in_features == 784 + 4
    res = train_cvae(model, x, y, epochs=15, batch_size=32, lr=2e-3, progress=False)
    first, last = res.history[0]["loss"], res.final_loss
    assert last < 0.6 * first, (first, last)
    # the conditioning works: decoding class c puts the band where class c has it
    imgs = model.generate(torch.zeros(4, 2), torch.arange(4))
    band_means = torch.stack([imgs[c, 0, 6 * c:6 * c + 4].mean() for c in range(4)])
    assert bool((band_means > 0.5).all())


def test_conv_cvae_for_rgb_and_loss_falls() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    x = torch.rand(48, 3, 32, 32, generator=g) * 0.2 + 0.4 * torch.nn.functional.one_hot(y, 3).float()[:, :, None, None]
    torch.manual_seed(0)
    assert isinstance(build_cvae((3, 32, 32), 3), ConvCVAE) and isinstance(build_cvae((1, 28, 28), 10), MLPCVAE)
    model = ConvCVAE((3, 32, 32), 3, width=8)  # narrow, to keep the test fast
    with torch.no_grad():
        recon, mu, logvar = model(x, y)
    assert recon.shape == x.shape and mu.shape == (48, 2) and float(recon.min()) >= 0 and float(recon.max()) <= 1
    res = train_cvae(model, x, y, epochs=6, batch_size=16, lr=3e-3, progress=False)
    assert res.final_loss < res.history[0]["loss"]


def test_cvae_loss_is_bce_sum_plus_kl() -> None:
    x = torch.full((2, 4), 0.5)
    recon = torch.full((2, 4), 0.5)
    mu, logvar = torch.zeros(2, 2), torch.zeros(2, 2)
    assert torch.isclose(cvae_loss(recon, x, mu, logvar), torch.tensor(4 * 0.6931472), atol=1e-5)
    mu1 = torch.ones(2, 2)  # KL of N(1, I) from N(0, I) in 2-D = 1
    assert torch.isclose(cvae_loss(recon, x, mu1, logvar) - cvae_loss(recon, x, mu, logvar), torch.tensor(1.0))


def test_hybrid_latents_half_gaussian_half_uniform() -> None:
    z, is_ood = hybrid_latents(2000, 2, generator=torch.Generator().manual_seed(0))
    assert int(is_ood.sum()) == 1000 and z.shape == (2000, 2)
    ood = z[is_ood]
    assert float(ood.abs().max()) <= 3.0 and float(ood.abs().max()) > 2.9
    assert abs(float(ood.var()) - 3.0) < 0.3  # var of U[-3, 3] is 3
    assert abs(float(z[~is_ood].std()) - 1.0) < 0.1


# --------------------------------------------------------------------------- the method


def _toy_setup(shots_pool: int = 400):
    info = dataset_info("toy2d-blobs-3")
    torch.manual_seed(0)
    teacher = build_model("mlp", in_channels=2, num_classes=3)
    box = BlackBox(teacher, access="score", input_shape=info.image_shape, num_classes=3, device="cpu")
    x = torch.rand(shots_pool, 2)
    data = MethodData(info, unlabeled=x, balanced_subset=lambda n: torch.arange(n))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", info, progress=False)
    return box, data, ctx


@pytest.mark.parametrize("cvae_count", [None, 37])
def test_queries_are_exactly_shots_plus_synthetic(cvae_count: int | None) -> None:
    box, data, ctx = _toy_setup()
    ts = FSBBT(shots=60, nomixup=300, cvae_epochs=2, epochs=1, cvae_count=cvae_count).distill(box, data, ctx)
    ex = ts.extras
    synthetic = ex["mixup_kept"] + ex["cvae_images"]
    # every queried image is a training row or a holdout row; the reported size excludes the holdout
    assert box.queries == 60 + synthetic == ts.size + ts.holdout_size == len(ts) + ts.holdout_size
    assert ts.holdout_size == round(box.queries * 0.1)
    assert box.queries_by_phase["few-shot"] == 60
    assert box.queries_by_phase["mixup"] == ex["mixup_kept"]
    assert box.queries_by_phase["cvae"] == ex["cvae_images"]
    ts.count_queries(box.queries_by_phase)
    for ing in ts.ingredients:  # per ingredient: its rows + held-out rows are exactly what its phase queried
        assert ing.rows + ing.holdout_rows == ing.queries == box.queries_by_phase[ing.name]
    if cvae_count is None:  # the CVAE makes up for exactly what MixUp dropped
        assert ex["cvae_images"] == ex["mixup_dropped"] and synthetic == 300
    else:
        assert ex["cvae_images"] == 37
    assert ex["cvae_ood_images"] == round(ex["cvae_images"] / 2)
    assert "holdout" in ts.selection and ts.loss_name == "soft-ce" and ts.target_kind == "probabilities"
    assert ts.recipe.batch_hook is not None and ts.recipe.epochs == 1
    assert sum(sum(v) for v in ex["label_counts"].values()) == box.queries


def test_ingredients_can_be_switched_off() -> None:
    box, data, ctx = _toy_setup()
    ts = FSBBT(shots=60, nomixup=300, cvae_epochs=1, ingredients=("few-shot", "mixup")).distill(box, data, ctx)
    assert ts.ingredient_names() == ["few-shot", "mixup"] and set(box.queries_by_phase) == {"few-shot", "mixup"}
    assert ts.extras["cvae_images"] == 0 and ts.artifacts["cvae"] is None and ts.extras["mixup_kept"] < 300
    box, data, ctx = _toy_setup()
    ts = FSBBT(shots=60, nomixup=300, cvae_epochs=1, ingredients=("few-shot", "cvae")).distill(box, data, ctx)
    assert ts.ingredient_names() == ["few-shot", "cvae"] and set(box.queries_by_phase) == {"few-shot", "cvae"}
    assert ts.extras["cvae_images"] == 300  # without MixUp the CVAE makes the whole synthetic budget
    assert int(ts.source.max()) == 1 and box.queries == 360 == ts.size + ts.holdout_size
    with pytest.raises(FewShotConfigError, match="few-shot"):
        FSBBTConfig.for_profile("smoke", ingredients=("mixup", "cvae"))
    with pytest.raises(FewShotConfigError, match="cvae"):
        FSBBTConfig.for_profile("smoke", ingredients=("few-shot", "mixup"), cvae_count=10)
    with pytest.raises(UnknownNameError, match="cvae"):
        FSBBTConfig.for_profile("smoke", ingredients=("few-shot", "gan"))


def test_bad_inputs_give_clear_errors() -> None:
    box, data, ctx = _toy_setup(100)
    with pytest.raises(FewShotConfigError, match="only 100 unlabeled"):
        FSBBT(shots=500, nomixup=10).distill(box, data, ctx)
    with pytest.raises(UnknownNameError, match="nomixups"):
        FSBBT(nomixups=10).distill(box, data, ctx)
    with pytest.raises(FewShotConfigError):
        FSBBTConfig.for_profile(get_profile("smoke"), mixup_low=0.9, mixup_high=0.1)
    decision = BlackBox(build_model("mlp", in_channels=2, num_classes=3), access="decision")
    with pytest.raises(AccessDenied, match="score"):
        FSBBT().distill(decision, data, ctx)
    assert box.queries == 0, "nothing is queried before the settings are checked"


def test_paper_profile_uses_the_papers_sizes() -> None:
    paper = get_profile("paper")
    assert FSBBTConfig.for_profile(paper, "fashion-mnist").nomixup == 48_000
    assert FSBBTConfig.for_profile(paper, "mnist").nomixup == 24_000
    assert FSBBTConfig.for_profile(paper, "cifar10").nomixup == 40_000
    assert FSBBTConfig.for_profile(paper, "fashion-mnist").shots == 2000
    assert FSBBTConfig.for_profile(get_profile("laptop")).shots == 2000
    assert FSBBTConfig.for_profile("laptop").ingredients == ("few-shot", "mixup", "cvae")
    assert FSBBTConfig.for_profile("paper", "fashion-mnist", nomixup=10).nomixup == 10  # an option beats the table


@pytest.mark.slow
def test_run_method_on_fashion_mnist_is_balanced_and_counted(fmnist_available: bool) -> None:
    from labkit import run_method

    run = run_method("fsbbt", profile="smoke", shots=100, nomixup=200, cvae_epochs=1, epochs=1, progress=False,
                     device="cpu")
    rec = run.record
    assert rec.queries == 100 + 200 == rec.transfer_set_size + rec.holdout_size and rec.access == "score"
    assert rec.holdout_size == 30 and rec.loss == "soft-ce" and rec.target_kind == "probabilities"
    assert rec.extras["shots"] == 100 and rec.extras["few_shot_selection"].startswith("class-balanced")
    assert set(rec.queries_by_phase) == {"few-shot", "mixup", "cvae"}
    assert list(rec.ingredients) == ["few-shot", "mixup", "cvae"]
    assert {k: v["queries"] for k, v in rec.ingredients.items()} == rec.queries_by_phase
    # the runner's balanced subset really is 10 per class (checked here with the labels the method never saw)
    train = load_dataset("fashion-mnist", "train", limit=get_profile("smoke").train_limit, seed=0)
    few = run.artifacts["few_shot_images"]
    w = torch.randn(few[0].numel(), dtype=torch.float64)  # a fingerprint per image
    f_few, f_train = few.flatten(1).double().cpu() @ w, train.x.flatten(1).double() @ w
    match = (f_few[:, None] - f_train[None, :]).abs().argmin(1)
    assert torch.allclose(train.x[match], few.cpu())
    assert torch.bincount(train.y[match], minlength=10).tolist() == [10] * 10


@pytest.mark.slow
def test_run_without_cvae_shows_in_the_record(fmnist_available: bool) -> None:
    from labkit import run_method

    rec = run_method("fsbbt", profile="smoke", shots=100, nomixup=200, epochs=1, progress=False, device="cpu",
                     ingredients=("few-shot", "mixup")).record
    assert list(rec.ingredients) == ["few-shot", "mixup"] and "cvae" not in rec.queries_by_phase
    assert rec.extras["cvae_images"] == 0 and rec.queries == 100 + rec.extras["mixup_kept"] < 300
    assert rec.transfer_set_size == sum(v["rows"] for v in rec.ingredients.values())
    assert rec.queries == rec.transfer_set_size + rec.holdout_size


def test_cli_accepts_shots_and_ingredients() -> None:
    from labkit.studies.cli import build_parser

    args = build_parser().parse_args(["run", "fsbbt", "--shots", "200", "--nomixup", "1000", "--profile", "smoke",
                                      "--ingredients", "few-shot", "mixup"])
    assert args.shots == 200 and args.nomixup == 1000 and "shots" in args._method_opts
    assert args.ingredients == ["few-shot", "mixup"]


# --------------------------------------------------------------------------- exercise, plots, widget


def test_mixup_exercise_checker() -> None:
    assert check_mixup_with_thresholds(reference_mixup_with_thresholds).passed
    res = check_mixup_with_thresholds(lambda x1, x2, lam, low, high: None)
    assert not res.passed and not res.attempted

    def no_rounding(x1, x2, lam, low, high):
        keep = (lam > low) & (lam < high)
        l = lam[keep].float().view(-1, 1, 1, 1)
        return l * x1[keep] + (1 - l) * x2[keep], lam[keep]

    def inclusive(x1, x2, lam, low, high):
        lam = torch.round(lam * 100) / 100
        keep = (lam >= low) & (lam <= high)
        l = lam[keep].float().view(-1, 1, 1, 1)
        return l * x1[keep] + (1 - l) * x2[keep], lam[keep]

    for wrong in (no_rounding, inclusive):
        res = check_mixup_with_thresholds(wrong)
        assert res.attempted and not res.passed and res.messages


def test_plots_and_explorer_widget() -> None:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    from labkit.teaching.plots import few_shot as fp
    from labkit.teaching.widgets.few_shot import mixup_explorer

    x, y = _striped_images(40, 4)
    torch.manual_seed(0)
    cvae = MLPCVAE((1, 28, 28), 4)
    names = ["a", "b", "c", "d"]
    probs = torch.nn.functional.one_hot(y, 4).float() * 0.7 + 0.075
    ms = make_mixup_set(x, 60, torch.Generator().manual_seed(0))
    z, ood = hybrid_latents(20, 2, generator=torch.Generator().manual_seed(0))
    figs = [fp.few_shot_grid(x, probs, names, per_class=2), fp.lambda_histogram(ms.all_lam),
            fp.mixup_gallery(x[ms.first], x[ms.second], ms.images, ms.lam, probs[:ms.kept], names, k=4),
            fp.cvae_manifold(cvae, names, steps=4), fp.cvae_samples(x[:20], ood, probs[:20], names, k=5),
            fp.latent_confidence(z, ood, probs[:20])]
    assert all(isinstance(f, Figure) for f in figs)
    assert isinstance(fp.label_distribution({"real": probs, "mixup": probs[:10]}, names), go.Figure)

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4))
    box = BlackBox(teacher, access="score", input_shape=(1, 28, 28), num_classes=4)
    ex = mixup_explorer(box, x, names, n_pairs=3)
    assert box.queries == 101 and ex.queries == 101
    before = list(ex.figure.data[1].y)
    ex.lam_slider.value = 0.2  # fires the callback; no new queries for the same pair
    assert list(ex.figure.data[1].y) != before and box.queries == 101
    assert "kept" in ex.figure.layout.title.text
    ex.lam_slider.value = 0.03
    assert "dropped" in ex.figure.layout.title.text
    ex.pair_slider.value = 1
    assert box.queries == 202 and box.queries_by_phase == {"mixup explorer": 202}
