"""ZSDB3KD: noise, starting samples, the label-preserving step, the synthesizer, exact query counts, the query
recorder, the transfer set and its ingredients, the method, the CLI."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import DatasetInfo
from labkit.core.errors import AccessDenied, ConfigError, LabkitError
from labkit.core.profiles import get_profile
from labkit.core.train import split_holdout
from labkit.methods.base import MethodData, RunContext, get_method, train_student
from labkit.methods.zsdb3kd import ZSDB3KD, ZSDB3KDConfig
from labkit.synthesis.noise import noise_images
from labkit.synthesis.pseudo_samples import (
    PseudoSampleInitError,
    PseudoSampleSettings,
    PseudoSampleSynthesizer,
    label_preserving_step,
    rejection_sample,
)
from labkit.synthesis.query_recorder import QueryRecorder
from labkit.teaching.exercises.label_preserving_step import BandClassifier, check_label_preserving_step

ALL = ("pseudo-samples", "pseudo-sample-paths", "noise-bank", "mixup")


class CountingCentroids(nn.Module):
    """A 3-class nearest-centroid teacher on 2-D points that counts every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor([[0.2, 0.2], [0.8, 0.3], [0.5, 0.85]]))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        return -torch.cdist(x.reshape(x.shape[0], -1), self.centres)


class NeverTwo(nn.Module):
    """A teacher that never answers class 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3)
        out[:, 0] = x[:, 0]
        out[:, 1] = 0.5
        return out


def toy_box(model: nn.Module | None = None, access: str = "decision") -> tuple[BlackBox, nn.Module]:
    model = model if model is not None else CountingCentroids()
    return BlackBox(model, access=access, input_shape=(2,), num_classes=3), model


def toy_cfg(**kw: object) -> ZSDB3KDConfig:
    """Sizes for the 2-D toy teacher (authors' noise: the image-prior families need images)."""
    base = dict(ingredients=("pseudo-samples",), per_class=12, iterations=6, n_directions=6, warm_directions=2,
                signopt_queries=40, label_directions=3, epochs=3, batch_size=16, n_probes=6, snapshot_every=2,
                snapshot_per_class=2, step_size=0.1, init_batch=64, max_init_draws=5000, curve_points=1,
                noise="authors")
    base.update(kw)
    return ZSDB3KDConfig.for_profile("smoke", **base)


def toy_settings(**kw: object) -> PseudoSampleSettings:
    """The synthesizer's settings that :func:`toy_cfg` builds."""
    return toy_cfg(**kw).pseudo_sample_settings()


def test_noise_images_follow_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x = noise_images(2000, (1, 4, 4), g)
    assert x.shape == (2000, 1, 4, 4) and float(x.min()) >= 0 and float(x.max()) <= 1
    # per-image scales: images differ a lot in brightness and contrast, pixels within one image share s1, s2
    means = x.flatten(1).mean(1)
    assert float(means.std()) > 0.1
    assert 0.0 < float((x == 0).float().mean()) < 0.5  # clipping at 0 happens (the Gaussian part), not always


def test_image_prior_noise_families() -> None:
    g = torch.Generator().manual_seed(0)
    leaves = noise_images(500, (1, 28, 28), g, family="dead-leaves")
    assert leaves.shape == (500, 1, 28, 28) and float(leaves.min()) >= 0 and float(leaves.max()) <= 1
    # piecewise flat: most horizontal neighbours are equal (flat shapes), but images are not constant
    flat = (leaves[..., 1:] == leaves[..., :-1]).float().mean()
    assert float(flat) > 0.8 and float(leaves.flatten(1).std(1).mean()) > 0.05
    smooth = noise_images(500, (1, 28, 28), g, family="smooth")
    pixels = noise_images(500, (1, 28, 28), g)
    step = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean() / x.std())  # noqa: E731
    assert step(smooth) < 0.5 * step(pixels)  # neighbouring pixels alike
    assert noise_images(4, (3, 32, 32), g, family="dead-leaves").shape == (4, 3, 32, 32)
    same = noise_images(8, (1, 28, 28), torch.Generator().manual_seed(5), family="dead-leaves")
    assert torch.equal(same, noise_images(8, (1, 28, 28), torch.Generator().manual_seed(5), family="dead-leaves"))
    with pytest.raises(LabkitError, match="Unknown noise family"):
        noise_images(2, (1, 4, 4), g, family="perlin")
    with pytest.raises(LabkitError, match="needs image inputs"):
        noise_images(2, (2,), g, family="dead-leaves")


def test_rejection_sampling_draws_at_least_min_draws() -> None:
    box, model = toy_box()
    with box.phase("initial noise"):
        init = rejection_sample(box, [2, 2, 2], (2,), seed=1, batch=50, max_draws=100, min_draws=400,
                                extra_phase="noise bank")
    assert init.draws == 400 == box.queries == model.seen and sum(init.hits_per_class) == 400
    assert torch.bincount(init.labels, minlength=3).tolist() == [2, 2, 2]
    # the batches drawn once every class had its samples are counted under the extra phase
    assert box.queries_by_phase == {"initial noise": 50, "noise bank": 350}


def test_rejection_sampling_gets_each_class_and_counts_every_draw() -> None:
    box, model = toy_box()
    init = rejection_sample(box, [5, 7, 3], (2,), seed=1, batch=50, max_draws=10_000)
    assert torch.bincount(init.labels, minlength=3).tolist() == [5, 7, 3]
    assert bool((init.labels[1:] >= init.labels[:-1]).all())  # sorted by class
    assert init.draws == box.queries == model.seen  # exact: every noise image sent once
    assert init.draws % 50 == 0 and sum(init.hits_per_class) == init.draws
    assert bool((model(init.images).argmax(1) == init.labels).all())


def test_rejection_sampling_caps_draws_with_clear_error() -> None:
    box, _ = toy_box(NeverTwo())
    with pytest.raises(PseudoSampleInitError, match=r"class\(es\) \[2\].*--per-class"):
        rejection_sample(box, [2, 2, 2], (2,), batch=100, max_draws=300)
    assert box.queries == 300


def test_step_moves_away_and_halves_where_the_label_would_change() -> None:
    model = BandClassifier()
    box = BlackBox(model, access="decision", input_shape=(2,), num_classes=3)
    # class-1 point at x0 = 0.35; its nearest boundary is at 0.275 (direction −x₀). A step of 0.5 away lands
    # at 0.85 (class 2), 0.25 at 0.60 (class 2), 0.125 at 0.475 (class 1): accepted after two halvings.
    x = torch.tensor([[0.35, 0.5], [0.70, 0.5], [0.5, 0.5]])
    y = model(x).argmax(1)
    direction = torch.tensor([[-1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    res = label_preserving_step(box, x, y, direction, 0.5, max_halvings=5)
    assert torch.allclose(res.step, torch.tensor([0.125, 0.5, 0.0]))
    assert torch.allclose(res.images[0], torch.tensor([0.475, 0.5]))
    assert torch.allclose(res.images[1], torch.tensor([1.0, 0.5]))  # clipped to the cube
    assert torch.equal(res.images[2], x[2])  # no direction: no move, no query
    assert res.queries == box.queries == 3 + 1
    assert bool((model(res.images).argmax(1) == y).all())
    # the boundary 0.01 behind the sample: λ = 0.5 · 2⁻⁶ is the first that keeps the label; 5 halvings are not enough
    near = torch.tensor([[0.285, 0.5]])
    five = label_preserving_step(box, near, model(near).argmax(1), torch.tensor([[1.0, 0.0]]), 0.5, max_halvings=5)
    assert torch.equal(five.images, near) and float(five.step[0]) == 0.0  # control: the lab's cap leaves it
    until = label_preserving_step(box, near, model(near).argmax(1), torch.tensor([[1.0, 0.0]]), 0.5, max_halvings=-1)
    assert float(until.step[0]) == 0.5 / 64 and torch.allclose(until.images, near - torch.tensor([[0.5 / 64, 0.0]]))
    with pytest.raises(ValueError, match="max_halvings"):
        label_preserving_step(box, near, model(near).argmax(1), torch.tensor([[1.0, 0.0]]), 0.5, max_halvings=-2)
    # with no halving allowed, the first point stays put
    res0 = label_preserving_step(box, x, y, direction, 0.5, max_halvings=0)
    assert torch.equal(res0.images[0], x[0]) and float(res0.step[0]) == 0.0


def test_every_step_keeps_the_label_and_distance_rises() -> None:
    box, model = toy_box()
    cfg = toy_settings()
    synth = PseudoSampleSynthesizer(box, cfg, 3, (2,), seed=0)
    res = synth.synthesize(36, progress=False)
    y = res.extras["labels"]
    assert torch.bincount(y, minlength=3).tolist() == [12, 12, 12]
    # the teacher's label of every snapshot (every recorded iteration) and of the final images is the start label
    with torch.no_grad():
        for snap in res.snapshots:
            assert bool((model(snap.images).argmax(1) == snap.labels).all())
        assert bool((model(res.images).argmax(1) == y).all())
    hist = res.extras["history"]
    assert len(hist) == cfg.iterations and [s.step for s in res.snapshots] == [0, 2, 4, 6]
    assert hist[-1]["mean_distance"] > hist[0]["mean_distance"]
    assert all(h["moved"] > 0 for h in hist)
    # soft labels: rows sum to 1 and put most mass on the teacher's class
    assert torch.allclose(res.targets.sum(1), torch.ones(36), atol=1e-5)
    assert bool((res.targets.argmax(1) == y).all())


def test_query_counts_are_exact() -> None:
    box, model = toy_box()
    res = PseudoSampleSynthesizer(box, toy_settings(iterations=3), 3, (2,), seed=3).synthesize(18, progress=False)
    assert model.seen == box.queries == sum(box.queries_by_phase.values())
    assert res.extras["generation_queries"] + res.extras["label_queries"] == box.queries
    assert res.extras["history"][-1]["queries"] == res.extras["generation_queries"]
    assert box.queries_by_phase["initial noise"] == res.extras["init_draws"]
    assert set(box.queries_by_phase) == {"initial noise", "nearest boundary", "step away", "soft labels"}


def test_query_recorder_keeps_labelled_queries_without_extra_queries() -> None:
    box, model = toy_box()
    recorder = QueryRecorder(box)
    x = torch.rand(300, 2, generator=torch.Generator().manual_seed(0))
    with box.phase("p"):
        out = recorder(x[:200])
    recorder(x[200:], phase="q")
    assert model.seen == box.queries == 300 == len(recorder) and box.queries_by_phase == {"p": 200, "q": 100}
    assert recorder.queries == box.queries and recorder.access == "decision"  # attributes come from the box
    kx, ky = recorder.tensors()
    assert kx.dtype == torch.float16 and torch.equal(ky[:200], out) and torch.allclose(kx.float(), x, atol=1e-3)
    counts = torch.bincount(ky, minlength=3).tolist()
    draw = recorder.balanced(120, 3, seed=0, holdout_per_class=2)  # 300 images: some class has fewer than 120
    assert torch.bincount(draw.y, minlength=3).tolist() == [120, 120, 120] and draw.x.dtype == torch.float32
    assert draw.holdout_x.shape[0] == draw.holdout_y.shape[0] == 6
    assert draw.distinct == sum(min(120, n - 2) for n in counts) < 360  # a rare class is drawn with replacement
    with torch.no_grad():  # every kept image carries the teacher's answer (half precision: allow a few at a boundary)
        assert float((model(draw.x).argmax(1) == draw.y).float().mean()) > 0.95


def test_settings_say_what_the_ingredients_keep() -> None:
    """The config turns its lab ingredients into the synthesizer's flags and copies its sizes."""
    plain = toy_settings()
    assert (plain.keep_noise_bank, plain.keep_paths) == (False, False)
    both = toy_settings(ingredients=ALL, min_init_draws=640, iterations=4)
    assert (both.keep_noise_bank, both.keep_paths, both.min_init_draws, both.iterations) == (True, True, 640, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        both.iterations = 1  # type: ignore[misc]


def test_paths_are_kept_only_when_asked_for() -> None:
    """keep_paths: the images before every iteration, (T, N, *shape), the first one the rejection-sampled start."""
    box, model = toy_box()
    settings = toy_settings(iterations=3, ingredients=("pseudo-samples", "pseudo-sample-paths"))
    res = PseudoSampleSynthesizer(box, settings, 3, (2,), seed=1).synthesize(9, progress=False)
    trajectory = res.extras["trajectory"]
    assert isinstance(trajectory, torch.Tensor) and trajectory.shape == (3, 9, 2)
    with torch.no_grad():  # every kept state carries the pseudo-sample's label
        assert all(bool((model(t).argmax(1) == res.extras["labels"]).all()) for t in trajectory)
    box0, _ = toy_box()
    res0 = PseudoSampleSynthesizer(box0, toy_settings(iterations=3), 3, (2,), seed=1).synthesize(9, progress=False)
    assert res0.extras["trajectory"] is None
    assert torch.equal(res0.images, res.images)  # keeping the paths changes no draw and no query
    assert box0.queries == box.queries


def test_noise_bank_records_exactly_the_noise_draws() -> None:
    box, model = toy_box()
    cfg = toy_settings(iterations=2, ingredients=("pseudo-samples", "noise-bank"), min_init_draws=640,
                       bank_per_class=10)
    res = PseudoSampleSynthesizer(box, cfg, 3, (2,), seed=2).synthesize(18, progress=False)
    recorder = res.extras["recorder"]
    assert isinstance(recorder, QueryRecorder) and res.extras["trajectory"] is None  # no paths asked for
    phases = box.queries_by_phase
    assert len(recorder) == res.extras["init_draws"] == phases["initial noise"] + phases["noise bank"] >= 640
    assert model.seen == box.queries > res.extras["init_draws"]  # the search is not recorded, and costs as always
    # without the noise bank: no recorder, and only the draws the pseudo-samples need
    box0, _ = toy_box()
    res0 = PseudoSampleSynthesizer(box0, toy_settings(iterations=1, min_init_draws=640), 3, (2,)).synthesize(
        9, progress=False)
    assert res0.extras["recorder"] is None and res0.extras["init_draws"] < 640
    assert "noise bank" not in box0.queries_by_phase


def toy_run(**kw: object) -> tuple[ZSDB3KD, RunContext, BlackBox, nn.Module]:
    box, model = toy_box()
    info = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", info, progress=False)
    opts = dict(per_class=10, iterations=3, n_directions=4, warm_directions=1, signopt_queries=24,
                label_directions=2, epochs=2, batch_size=32, step_size=0.1, init_batch=64, curve_points=1,
                noise="authors", min_init_draws=1000, bank_per_class=20)  # 2-D points: the authors' noise
    opts.update(kw)
    return ZSDB3KD(**opts), ctx, box, model


def test_method_builds_the_transfer_set_and_trains_the_curve() -> None:
    method, ctx, box, model = toy_run()
    cfg = method.config(ctx)
    transfer = method.distill(box, MethodData(ctx.info), ctx)
    assert transfer.ingredient_names() == list(ALL) and transfer.target_kind == "distance-soft-labels"
    assert transfer.loss_name == "soft-kd" and transfer.selection.startswith("teacher-labelled holdout")
    ing = {i.name: i for i in transfer.ingredients}
    kept = 30 - split_holdout(30, cfg.holdout_fraction, ctx.seed, torch.device("cpu"))[1].numel()
    assert ing["pseudo-samples"].rows == kept and ing["pseudo-samples"].holdout_rows == 30 - kept
    assert ing["pseudo-sample-paths"].rows == kept * 3  # one image per iteration
    assert 0 < ing["noise-bank"].rows <= 3 * cfg.bank_per_class and ing["mixup"].rows == 0
    assert transfer.size == kept * 4 + ing["noise-bank"].rows  # distinct rows: repeats and resampling count once
    assert len(transfer) == kept * 4 * cfg.pseudo_repeat + 3 * cfg.bank_per_class
    assert torch.bincount(transfer.source, minlength=4).tolist()[:3] == [kept, kept * 3, 3 * cfg.bank_per_class]
    assert transfer.holdout_size == 30 - kept + ing["noise-bank"].holdout_rows
    assert transfer.recipe.batch_hook is not None  # the mixup ingredient
    student, fit = train_student(transfer, ctx)
    method.after_training(transfer, student, fit, box, MethodData(ctx.info), ctx)
    transfer.count_queries(box.queries_by_phase)
    assert ing["mixup"].queries == box.queries_by_phase["relabel mixup"] == transfer.extras["mixup_queries"] > 0
    assert ing["noise-bank"].queries == box.queries_by_phase["noise bank"] > 0
    json.dumps(transfer.extras)  # record-friendly
    ex = transfer.extras
    assert ex["method_queries"] + box.queries_by_phase["accuracy curve"] == box.queries == model.seen
    assert sum(i.queries for i in transfer.ingredients) == ex["method_queries"]
    curve = ex["curve"]
    assert [row["iteration"] for row in curve] == [0, 3]  # curve_points=1: the noise start, then the end
    assert curve[-1]["queries"] == ex["method_queries"] and curve[0]["queries"] <= curve[-1]["queries"]
    assert "recorder" not in transfer.artifacts and transfer.artifacts["curve"][-1]["student"] is student
    assert student(torch.rand(5, 2)).shape == (5, 3)


def test_ingredients_can_be_switched_off() -> None:
    method, ctx, box, _ = toy_run(ingredients=("pseudo-samples",))
    transfer = method.distill(box, MethodData(ctx.info), ctx)
    assert transfer.ingredient_names() == ["pseudo-samples"] and transfer.recipe.batch_hook is None
    assert transfer.size == len(transfer) == transfer.ingredients[0].rows
    assert set(box.queries_by_phase) == {"initial noise", "nearest boundary", "step away", "soft labels"}
    with pytest.raises(ConfigError, match="pseudo-samples"):
        ZSDB3KDConfig.for_profile("smoke", ingredients=("noise-bank",))
    with pytest.raises(ConfigError, match="mixup_fraction"):
        ZSDB3KDConfig.for_profile("smoke", mixup_fraction=0.0)
    assert ZSDB3KDConfig.for_profile("paper", mixup_fraction=0.0).mixup_fraction == 0.0  # no mixup there


def test_only_a_decision_box_is_accepted() -> None:
    box, _ = toy_box(access="score")
    info = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", info, progress=False)
    with pytest.raises(AccessDenied):
        ZSDB3KD().distill(box, MethodData(info), ctx)
    with pytest.raises(AccessDenied):
        PseudoSampleSynthesizer(box, toy_settings(), 3, (2,))
    cls = get_method("zsdb3kd")
    assert cls is ZSDB3KD and cls.access == "decision" and cls.data_access == "none"


def test_profiles_and_cli_options() -> None:
    paper = ZSDB3KDConfig.for_profile("paper")
    assert (paper.per_class, paper.iterations, paper.signopt_queries, paper.n_directions) == (3000, 40, 5000, 20)
    assert paper.step_size == 0.5 and paper.tau == 20.0 and paper.snapshot_every == 5
    assert paper.ingredients == ("pseudo-samples",) and paper.noise == "authors"
    smoke = ZSDB3KDConfig.for_profile("smoke", per_class=3, iterations=None)
    assert smoke.per_class == 3 and smoke.iterations == ZSDB3KDConfig.for_profile("smoke").iterations
    assert smoke.ingredients == ALL
    laptop = ZSDB3KDConfig.for_profile("laptop")
    assert laptop.noise == "dead-leaves" and laptop.min_init_draws >= 100_000 and not laptop.uses("mixup")
    from labkit.studies.cli import build_parser

    def cli_cfg(*flags: str, profile: str = "smoke") -> ZSDB3KDConfig:
        args = build_parser().parse_args(["run", "zsdb3kd", *flags])
        return ZSDB3KD(**{a: getattr(args, a) for a in args._method_opts}).config(
            RunContext(get_profile(profile), 0, torch.device("cpu"), "mlp-small", DatasetInfo("x", ("a",), (2,))))

    cfg = cli_cfg("--per-class", "4", "--iterations", "2", "--signopt-queries", "50")
    assert (cfg.per_class, cfg.iterations, cfg.signopt_queries) == (4, 2, 50)
    cfg = cli_cfg("--noise", "authors", "--min-init-draws", "1000", "--ingredients", "pseudo-samples", "noise-bank",
                  profile="laptop")
    assert (cfg.noise, cfg.min_init_draws, cfg.ingredients) == ("authors", 1000, ("pseudo-samples", "noise-bank"))
    for bad in (["--noise", "perlin"], ["--queries", "50"], ["--ingredients", "impressions"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", "zsdb3kd", *bad])


@pytest.mark.slow
def test_paper_mechanism_alone_runs_in_smoke() -> None:
    from labkit.studies.runner import run_method

    run = run_method("zsdb3kd", profile="smoke", seed=0, progress=False, ingredients=("pseudo-samples",))
    rec = run.record
    assert list(rec.ingredients) == ["pseudo-samples"]
    ing = rec.ingredients["pseudo-samples"]
    assert ing["rows"] == rec.transfer_set_size == len(run.transfer) > 0 and ing["holdout_rows"] == rec.holdout_size
    assert ing["queries"] == rec.extras["method_queries"] == rec.queries - rec.queries_by_phase["accuracy curve"]
    assert "noise bank" not in rec.queries_by_phase and "relabel mixup" not in rec.queries_by_phase
    assert rec.loss == "soft-kd" and rec.target_kind == "distance-soft-labels" and 0 <= rec.student_acc <= 1


def test_exercise_checker() -> None:
    def reference(box, x, y, direction, step_size, max_halvings):  # type: ignore[no-untyped-def]
        return label_preserving_step(box, x, y, direction, step_size, max_halvings).images

    def toward(box, x, y, direction, step_size, max_halvings):  # type: ignore[no-untyped-def]
        return (x + step_size * direction).clamp(0, 1)

    assert check_label_preserving_step(reference).passed
    r = check_label_preserving_step(lambda *a: None)
    assert not r.passed and not r.attempted
    r = check_label_preserving_step(toward)
    # a step that never checks the label: the checker names the images that changed class and the halving rule
    assert r.attempted and not r.passed and any("changed class" in m and "Halve" in m for m in r.messages)


def test_dashboard_and_figures() -> None:
    from matplotlib.figure import Figure

    from labkit.synthesis.base import Snapshot
    from labkit.teaching.plots.pseudo_samples import (
        accuracy_curves,
        distance_curve,
        snapshot_mosaic,
        soft_label_distributions,
    )
    from labkit.teaching.widgets.pseudo_samples import pseudo_sample_dashboard

    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    snaps = [Snapshot(step, torch.rand(6, 1, 4, 4, generator=g), labels) for step in (0, 2, 4)]
    mosaic = snapshot_mosaic(snaps[0], 3)
    assert mosaic.shape == (3 * 5 + 1, 2 * 5 + 1)
    assert torch.equal(mosaic[1:5, 1:5], snaps[0].images[0, 0])  # class 0, first image, top-left
    history = [{"iteration": i, "mean_distance": 1.0 + i, "median_distance": 1.0 + i, "moved": 0.9} for i in (1, 2, 3)]
    dash = pseudo_sample_dashboard(snaps, ["a", "b", "c"], history=history)
    before = [list(r) for r in dash.figure.data[0].z]
    dash.slider.value = 4  # the observe callback redraws
    assert [list(r) for r in dash.figure.data[0].z] != before and "4 iteration" in dash.figure.layout.title.text
    dash.redraw(2)
    assert "distance" in dash.readout.value
    soft = torch.softmax(torch.randn(6, 3, generator=g), 1)
    for fig in (distance_curve(history), soft_label_distributions(soft, labels, ["a", "b", "c"]),
                accuracy_curves([{"iteration": 0, "queries": 10, "test_acc": 0.2, "holdout_acc": 0.3},
                                 {"iteration": 4, "queries": 1000, "test_acc": 0.4, "holdout_acc": 0.5}], 0.9)):
        assert isinstance(fig, Figure) and fig.axes


class StructureOnly(nn.Module):
    """A 10-class image teacher: class 9 where the left half is brighter than the right by > 0.2 (independent-pixel
    noise never draws such an image), else one of 9 bands of the mean intensity."""

    BANDS = torch.tensor([0.21, 0.29, 0.34, 0.39, 0.43, 0.48, 0.53, 0.57])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = torch.bucketize(x.mean((1, 2, 3)), self.BANDS)
        y = torch.where(x[..., :14].mean((1, 2, 3)) - x[..., 14:].mean((1, 2, 3)) > 0.2, 9, band)
        return nn.functional.one_hot(y, 10).float()


def test_a_class_the_authors_noise_never_reaches_is_started_from_the_fallback_families() -> None:
    box = BlackBox(StructureOnly(), access="decision", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(PseudoSampleInitError, match="class"):  # control: the authors' noise alone never gets there
        rejection_sample(box, [3] * 10, (1, 28, 28), batch=4096, max_draws=30_000)
    box.reset_counter()
    init = rejection_sample(box, [3] * 10, (1, 28, 28), batch=4096, max_draws=60_000,
                            fallback=("smooth", "dead-leaves"))
    assert torch.bincount(init.labels, minlength=10).tolist() == [3] * 10 and box.queries == init.draws
    assert init.kept_per_family["authors"] == [3] * 9 + [0] and init.kept_per_family["smooth"][9] == 3
    # it switched once the projected draws for class 9 passed what was left: 3 x draws > 60k - draws
    assert 60_000 // 4 <= init.draws_per_family["authors"] <= 60_000 // 4 + 4096
    assert init.draws < 25_000 and sum(init.draws_per_family.values()) == init.draws
    # where the authors' noise fills every class in time, the fallback never draws
    easy = rejection_sample(box, [3] * 9 + [0], (1, 28, 28), batch=4096, max_draws=60_000,
                            fallback=("smooth", "dead-leaves"))
    assert list(easy.draws_per_family) == ["authors"]


def test_the_paper_variant_starts_on_that_teacher_by_its_fallback() -> None:
    box = BlackBox(StructureOnly(), access="decision", input_shape=(1, 28, 28), num_classes=10)
    cfg = ZSDB3KDConfig.for_profile("smoke", variant="paper", per_class=2, iterations=1, max_init_draws=30_000,
                                    init_batch=4096)
    assert cfg.noise == "authors" and cfg.noise_fallback == ("smooth", "dead-leaves")
    res = PseudoSampleSynthesizer(box, cfg.pseudo_sample_settings(), 10, (1, 28, 28), seed=0).synthesize(20)
    assert torch.bincount(res.extras["labels"], minlength=10).tolist() == [2] * 10
    assert res.extras["init_kept_per_family"]["smooth"][9] == 2
    with pytest.raises(ConfigError, match="noise_fallback"):
        ZSDB3KDConfig.for_profile("smoke", noise_fallback=("plasma",)).check()
