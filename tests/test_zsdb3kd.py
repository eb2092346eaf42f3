"""ZSDB3KD: starting samples, the label-preserving step, the synthesizer, exact query counts, the method, the CLI."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from labkit.blackbox import BlackBox
from labkit.data import DatasetInfo
from labkit.errors import AccessDenied, LabkitError
from labkit.exercises.label_preserving_step import BandClassifier, check_label_preserving_step
from labkit.methods.base import MethodData, RunContext, get_method
from labkit.methods.zsdb3kd import (ZSDB3KD, PseudoSampleInitError, PseudoSampleSynthesizer, QueryBank,
                                    ZSDB3KDConfig, label_preserving_step, noise_images, rejection_sample)
from labkit.profiles import get_profile
from labkit.train import split_holdout


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
    base = dict(per_class=12, iterations=6, n_directions=6, warm_directions=2, signopt_queries=40,
                label_directions=3, epochs=3, batch_size=16, n_probes=6, snapshot_every=2, snapshot_per_class=2,
                step_size=0.1, init_batch=64, max_init_draws=5000, curve_points=1)
    base.update(kw)
    return ZSDB3KDConfig(**base)  # type: ignore[arg-type]


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
    init = rejection_sample(box, [2, 2, 2], (2,), seed=1, batch=50, max_draws=100, min_draws=400)
    assert init.draws == 400 == box.queries == model.seen and sum(init.hits_per_class) == 400
    assert torch.bincount(init.labels, minlength=3).tolist() == [2, 2, 2]


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
    # with no halving allowed, the first point stays put
    res0 = label_preserving_step(box, x, y, direction, 0.5, max_halvings=0)
    assert torch.equal(res0.images[0], x[0]) and float(res0.step[0]) == 0.0


def test_every_step_keeps_the_label_and_distance_rises() -> None:
    box, model = toy_box()
    cfg = toy_cfg()
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
    cfg = toy_cfg(iterations=3)
    res = PseudoSampleSynthesizer(box, cfg, 3, (2,), seed=3).synthesize(18, progress=False)
    assert model.seen == box.queries == sum(box.queries_by_phase.values())
    assert res.extras["generation_queries"] + res.extras["label_queries"] == box.queries
    assert res.extras["history"][-1]["queries"] == res.extras["generation_queries"]
    assert box.queries_by_phase["initial noise"] == res.extras["init_draws"]
    assert set(box.queries_by_phase) == {"initial noise", "nearest boundary", "step away", "soft labels"}


def test_query_bank_keeps_labelled_queries_without_extra_queries() -> None:
    box, model = toy_box()
    cfg = toy_cfg(iterations=3, record_fraction=0.5, bank_per_class=10)
    res = PseudoSampleSynthesizer(box, cfg, 3, (2,), seed=2).synthesize(18, progress=False)
    bank = res.extras["bank"]
    assert isinstance(bank, QueryBank)
    assert model.seen == box.queries == sum(box.queries_by_phase.values())  # recording costs no query
    x, y, q = bank.tensors()
    assert 0.3 * box.queries < len(bank) == y.numel() < 0.7 * box.queries
    with torch.no_grad():  # every kept image carries the teacher's answer (half precision: allow a few at a boundary)
        assert float((model(x.float()).argmax(1) == y).float().mean()) > 0.95
    assert bool((q[1:] >= q[:-1]).all()) and int(q.max()) <= box.queries
    bx, by, hx, hy, distinct = bank.balanced(10, 3, seed=0, holdout_per_class=2)
    assert torch.bincount(by, minlength=3).tolist() == [10, 10, 10] and bx.dtype == torch.float32
    assert hx.shape[0] == hy.shape[0] == 6 and 0 < distinct <= 30
    early = int(q[q.numel() // 4])
    ex, ey, _, _, _ = bank.balanced(10, 3, seed=0, upto=early)
    assert ex.shape[0] <= 30
    # record_search=False: the bank keeps exactly the noise draws (all of them at fraction 1), still at no extra query
    box2, model2 = toy_box()
    cfg2 = toy_cfg(iterations=2, record_fraction=1.0, record_search=False, min_init_draws=640, bank_per_class=10)
    res2 = PseudoSampleSynthesizer(box2, cfg2, 3, (2,), seed=2).synthesize(18, progress=False)
    assert len(res2.extras["bank"]) == res2.extras["init_draws"] == box2.queries_by_phase["initial noise"] >= 640
    assert model2.seen == box2.queries > res2.extras["init_draws"]
    # without recording there is no bank
    res0 = PseudoSampleSynthesizer(toy_box()[0], toy_cfg(iterations=1), 3, (2,)).synthesize(9, progress=False)
    assert res0.extras["bank"] is None


def test_method_trains_a_student_with_a_holdout_and_reports_queries() -> None:
    box, model = toy_box()
    info = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", info, progress=False)
    method = ZSDB3KD(per_class=10, iterations=3, n_directions=4, warm_directions=1, signopt_queries=24,
                     label_directions=2, epochs=3, batch_size=8, step_size=0.1, init_batch=64, curve_points=1,
                     mixup_fraction=0.5, noise="authors", min_init_draws=1000, bank_per_class=20)  # 2-D points
    out = method.distill(box, MethodData(info), ctx)
    # the transfer set is every distinct training image: kept pseudo-samples, their verified paths (one image
    # per iteration) and the recorded queries drawn from the bank (at most bank_per_class per class)
    kept = 30 - split_holdout(30, method.config(ctx.profile).holdout_fraction, ctx.seed, torch.device("cpu"))[1].numel()
    assert out.extras["pseudo_samples"] == 30
    assert kept * (1 + 3) < out.transfer_set_size <= kept * (1 + 3) + 3 * method.config(ctx.profile).bank_per_class
    assert out.selection.startswith("teacher-labelled holdout")
    assert out.val_acc is not None and 0 <= out.val_acc <= 1
    json.dumps(out.extras)  # record-friendly
    assert out.extras["method_queries"] + box.queries_by_phase["accuracy curve"] == box.queries == model.seen
    assert out.extras["mixup_queries"] == box.queries_by_phase["relabel mixup"] > 0
    assert out.extras["bank_size"] > 0  # the smoke profile records part of the queries for the student
    curve = out.extras["curve"]
    assert [row["iteration"] for row in curve] == [0, 3]  # curve_points=1: the noise start, then the end
    assert curve[-1]["queries"] == out.extras["method_queries"]
    assert all(a["queries"] <= b["queries"] for a, b in zip(curve, curve[1:]))
    logits = out.student(torch.rand(5, 2))
    assert logits.shape == (5, 3)


def test_only_a_decision_box_is_accepted() -> None:
    box, _ = toy_box(access="score")
    info = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", info, progress=False)
    with pytest.raises(AccessDenied):
        ZSDB3KD().distill(box, MethodData(info), ctx)
    with pytest.raises(AccessDenied):
        PseudoSampleSynthesizer(box, toy_cfg(), 3, (2,))
    cls = get_method("zsdb3kd")
    assert cls is ZSDB3KD and cls.access == "decision" and cls.data_access == "none"


def test_profiles_and_cli_options() -> None:
    paper = ZSDB3KDConfig.for_profile(get_profile("paper"))
    assert (paper.per_class, paper.iterations, paper.signopt_queries, paper.n_directions) == (3000, 40, 5000, 20)
    assert paper.step_size == 0.5 and paper.tau == 20.0 and paper.snapshot_every == 5
    smoke = ZSDB3KDConfig.for_profile(get_profile("smoke"), per_class=3, iterations=None)
    assert smoke.per_class == 3 and smoke.iterations == ZSDB3KDConfig.for_profile(get_profile("smoke")).iterations
    from labkit.cli import build_parser

    args = build_parser().parse_args(["run", "zsdb3kd", "--per-class", "4", "--iterations", "2", "--queries", "50"])
    opts = {a: getattr(args, a) for a in args._method_opts}
    assert opts["per_class"] == 4 and opts["iterations"] == 2 and opts["signopt_queries"] == 50
    cfg = ZSDB3KD(**opts).config(get_profile("smoke"))
    assert (cfg.per_class, cfg.iterations, cfg.signopt_queries) == (4, 2, 50)
    laptop = ZSDB3KDConfig.for_profile(get_profile("laptop"))
    assert laptop.noise == "dead-leaves" and not laptop.record_search and laptop.min_init_draws >= 100_000
    assert paper.noise == "authors" and paper.record_fraction == 0 and paper.min_init_draws == 0
    args = build_parser().parse_args(["run", "zsdb3kd", "--noise", "authors", "--min-init-draws", "1000",
                                      "--record-search"])
    cfg = ZSDB3KD(**{a: getattr(args, a) for a in args._method_opts}).config(get_profile("laptop"))
    assert (cfg.noise, cfg.min_init_draws, cfg.record_search) == ("authors", 1000, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "zsdb3kd", "--noise", "perlin"])


def test_exercise_checker() -> None:
    def reference(box, x, y, direction, step_size, max_halvings):  # type: ignore[no-untyped-def]
        return label_preserving_step(box, x, y, direction, step_size, max_halvings).images

    def toward(box, x, y, direction, step_size, max_halvings):  # type: ignore[no-untyped-def]
        return (x + step_size * direction).clamp(0, 1)

    assert check_label_preserving_step(reference).passed
    r = check_label_preserving_step(lambda *a: None)
    assert not r.passed and not r.attempted
    r = check_label_preserving_step(toward)
    assert r.attempted and not r.passed and any("toward" in m for m in r.messages)


def test_dashboard_and_figures() -> None:
    from matplotlib.figure import Figure

    from labkit.plots.pseudo_samples import accuracy_curves, distance_curve, snapshot_mosaic, soft_label_distributions
    from labkit.synthesis import Snapshot
    from labkit.widgets.pseudo_samples import evolution_dashboard

    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    snaps = [Snapshot(step, torch.rand(6, 1, 4, 4, generator=g), labels) for step in (0, 2, 4)]
    mosaic = snapshot_mosaic(snaps[0], 3)
    assert mosaic.shape == (3 * 5 + 1, 2 * 5 + 1)
    assert torch.equal(mosaic[1:5, 1:5], snaps[0].images[0, 0])  # class 0, first image, top-left
    history = [{"iteration": i, "mean_distance": 1.0 + i, "median_distance": 1.0 + i, "moved": 0.9} for i in (1, 2, 3)]
    dash = evolution_dashboard(snaps, ["a", "b", "c"], history=history)
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
