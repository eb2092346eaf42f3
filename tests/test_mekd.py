"""MEKD: the frozen generator passes gradients but never changes, hard mode never sees probabilities,
query counts are exact, and the notebook helpers (exercise, widget, plots) behave."""
from __future__ import annotations

import copy

import pytest
import torch

from labkit.core.blackbox import BlackBox
from labkit.core.data import dataset_info, load_dataset
from labkit.core.errors import AccessDenied, ConfigError, UnknownNameError
from labkit.core.losses import registered_name
from labkit.core.models import model_for
from labkit.core.profiles import get_profile
from labkit.methods.base import MethodData, RunContext, get_method, train_student
from labkit.methods.kd_edge import EdgeKD, EdgeKDConfig
from labkit.methods.mekd import MEKD, MEKDConfig, generated_transfer_set
from labkit.synthesis.alignment import GenerativeAlignmentLoss, response_logits
from labkit.synthesis.deprivatisation import GANSettings, GeneratorSynthesizer
from labkit.synthesis.generators import (
    ResponseGenerator,
    build_discriminator,
    build_generator,
    centre_responses,
    freeze,
    interpolate_responses,
)

INFO = dataset_info("fashion-mnist")
TINY = dict(gan_epochs=1, epochs=1, transfer_size=192, holdout_size=64, g_width=8, d_width=4, batch_size=64)


def _tiny_generator(seed: int = 0) -> ResponseGenerator:
    torch.manual_seed(seed)
    g = ResponseGenerator(10, (1, 28, 28), width=8)
    with torch.no_grad():
        g(torch.randn(32, 10))  # non-trivial BN running statistics
    return g


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class SpyBox:
    """Wraps a BlackBox and records every answer it hands out (the method sees only what the box returns)."""

    def __init__(self, box: BlackBox) -> None:
        self._box = box
        self.answers: list[torch.Tensor] = []

    def __getattr__(self, name: str):
        return getattr(self._box, name)

    def __call__(self, x: torch.Tensor, **kw) -> torch.Tensor:
        out = self._box(x, **kw)
        self.answers.append(out)
        return out


def test_generator_shapes_range_and_shift_invariance() -> None:
    g = freeze(_tiny_generator())
    z = torch.randn(5, 10)
    x = g(z)
    assert x.shape == (5, 1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
    # logits are defined up to a constant: G ignores it, so log-probabilities and logits give the same image
    assert torch.allclose(g(z + 3.0), x, atol=1e-5)
    assert torch.allclose(centre_responses(z).mean(1), torch.zeros(5), atol=1e-6)
    toy = build_generator(dataset_info("toy2d-blobs-3"), width=8).eval()
    assert toy(torch.randn(4, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="shape"):
        g(torch.randn(5, 7))
    line = interpolate_responses(0, 3, 10, steps=5, scale=2.0)
    assert torch.allclose(line[0, 0], torch.tensor(2.0)) and torch.allclose(line[-1, 3], torch.tensor(2.0))


def test_gradients_reach_student_through_frozen_generator() -> None:
    g = _tiny_generator()
    before = _state(g)
    student = model_for("lenet5-half", INFO)
    loss_fn = GenerativeAlignmentLoss(g, 10, "soft", w_kl=0.0)  # alignment term only
    assert not any(p.requires_grad for p in g.parameters()) and not g.training
    assert list(loss_fn.parameters()) == []  # G is not something an optimiser would see
    opt = torch.optim.SGD(list(student.parameters()) + list(g.parameters()), lr=0.5)  # even if G were handed over
    x = torch.rand(16, 1, 28, 28)
    probs = torch.softmax(torch.randn(16, 10) * 3, 1)
    s_before = [p.detach().clone() for p in student.parameters()]
    for _ in range(3):
        loss = loss_fn(student(x), probs)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad for p in student.parameters()]
        assert all(gr is not None for gr in grads)
        assert sum(float(gr.abs().sum()) for gr in grads) > 0  # the image comparison moves the student
        assert all(p.grad is None for p in g.parameters())
        opt.step()
    after = _state(g)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics unchanged
    assert any(not torch.equal(a, p) for a, p in zip(s_before, student.parameters()))


def test_loss_matches_formula() -> None:
    g = freeze(_tiny_generator())
    s = torch.randn(8, 10) * 3
    p = torch.softmax(torch.randn(8, 10) * 3, 1)
    loss = GenerativeAlignmentLoss(g, 10, "soft", tau=5.0, tau_g=5.0)
    r = torch.log(p)
    align = (g(s / 5) - g(r / 5)).abs().mean()
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 5, 1), torch.softmax(r / 5, 1), reduction="batchmean") * 5
    assert torch.allclose(loss(s, p), align + kl, rtol=1e-5)
    # hard mode: a one-hot response
    ids = p.argmax(1)
    hard = GenerativeAlignmentLoss(g, 10, "hard")
    onehot = torch.nn.functional.one_hot(ids, 10).float()
    want = (g(s / 5) - g(onehot / 5)).abs().mean() + torch.nn.functional.kl_div(
        torch.log_softmax(s / 5, 1), torch.softmax(onehot / 5, 1), reduction="batchmean") * 5
    assert torch.allclose(hard(s, ids), want, rtol=1e-5)
    with pytest.raises(AccessDenied):
        response_logits(p, 10, "hard")  # hard mode refuses probabilities
    with pytest.raises(UnknownNameError, match="soft"):
        response_logits(p, 10, "medium")


def _ctx() -> RunContext:
    return RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", INFO, progress=False)


@pytest.mark.parametrize("mix", [False, True])
def test_distillation_leaves_generator_unchanged(teacher, mix: bool) -> None:
    g = _tiny_generator()
    before = _state(g)
    box = BlackBox(teacher.model, access="score", input_shape=(1, 28, 28), num_classes=10)
    ingredients = ("generated", "edge-images") if mix else ("generated",)
    cfg = MEKDConfig.for_profile("smoke", **TINY, ingredients=ingredients)
    edge = torch.rand(50, 1, 28, 28)
    ts = generated_transfer_set(box, g, 10, cfg, progress=False, edge_images=edge)
    assert registered_name(ts.loss) == ts.loss_name == "mekd-alignment" and ts.target_kind == "probabilities"
    student, fit = train_student(ts, _ctx())
    after = _state(g)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert fit.best_val_acc is not None and len(fit.history) == cfg.epochs
    rows = {i.name: (i.rows, i.holdout_rows) for i in ts.ingredients}
    if mix:  # the edge images join the transfer set; 10% of them (teacher-labelled) select the epoch
        assert box.queries_by_phase == {"distillation: G(z)": cfg.transfer_size, "distillation: edge images": 50}
        assert ts.size == len(ts) == cfg.transfer_size + 45 and ts.holdout_size == 5
        assert rows == {"generated": (cfg.transfer_size, 0), "edge-images": (45, 5)}
    else:  # edge-images off: edge images handed over are ignored, never sent
        assert box.queries == cfg.transfer_size + cfg.holdout_size == box.queries_by_phase["distillation: G(z)"]
        assert ts.size == cfg.transfer_size and ts.holdout_size == cfg.holdout_size
        assert rows == {"generated": (cfg.transfer_size, cfg.holdout_size)}
    assert sum(ts.extras["class_histogram"]) == ts.size
    assert isinstance(ts.artifacts["synthesizer"], GeneratorSynthesizer)


def _tiny_run(teacher, response: str, access: str, **options):
    data = load_dataset("fashion-mnist", "train", limit=640, seed=0)
    box = SpyBox(BlackBox(teacher.model, access=access, input_shape=(1, 28, 28), num_classes=10))
    method = MEKD(response=response, **{**TINY, **options})
    out = method.distill(box, MethodData(INFO, unlabeled=data.x), _ctx())  # type: ignore[arg-type]
    return method, box, out


def test_hard_mode_never_sees_probabilities(teacher) -> None:
    method = MEKD(response="hard")
    assert method.access == "decision" and method.label == "mekd-hard"
    assert MEKD(response="soft").access == "score" and MEKD().label == "mekd-soft"
    method, box, out = _tiny_run(teacher, "hard", "decision")
    assert box.answers, "the method asked the teacher nothing"
    for ans in box.answers:  # every answer the method got was a vector of class ids
        assert ans.dtype == torch.int64 and ans.dim() == 1 and not torch.is_floating_point(ans)
    assert out.target_kind == "class-ids" and out.targets[0].dtype == torch.int64
    # a score box is refused outright: hard mode must not be able to see probabilities
    score_box = BlackBox(teacher.model, access="score", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(AccessDenied, match="never see probabilities"):
        method.distill(score_box, MethodData(INFO, unlabeled=torch.rand(64, 1, 28, 28)), _ctx())  # type: ignore[arg-type]
    assert score_box.queries == 0


@pytest.mark.parametrize("edge_images", [True, False])
def test_soft_run_counts_every_query_exactly(teacher, edge_images: bool) -> None:
    ingredients = ("generated", "edge-images") if edge_images else ("generated",)
    method, box, out = _tiny_run(teacher, "soft", "score", ingredients=ingredients)
    edge = round(640 * 0.1)
    phases = box.queries_by_phase
    out.count_queries(phases)
    ing = {i.name: i.as_record() for i in out.ingredients}
    gan = edge * TINY["gan_epochs"]
    if edge_images:
        # the edge images are answered once (counted) and join the generated transfer set; a teacher-labelled
        # 10% of them selects the epoch instead of a generated holdout
        held = round(edge * 0.1)
        assert phases == {"deprivatisation: G(z)": gan, "distillation: G(z)": TINY["transfer_size"],
                          "distillation: edge images": edge}
        assert out.size == TINY["transfer_size"] + edge - held
        assert ing == {"generated": {"rows": TINY["transfer_size"], "holdout_rows": 0,
                                     "queries": gan + TINY["transfer_size"]},
                       "edge-images": {"rows": edge - held, "holdout_rows": held, "queries": edge}}
        assert out.selection == "teacher-labelled holdout of the edge images"
    else:
        # the generated-only ablation: the private edge images are never sent to the teacher, only G's samples are
        assert phases == {"deprivatisation: G(z)": gan,
                          "distillation: G(z)": TINY["transfer_size"] + TINY["holdout_size"]}
        assert out.size == TINY["transfer_size"] and list(ing) == ["generated"]
        assert ing["generated"]["queries"] == box.queries
        assert out.selection == "teacher-labelled holdout of generated images"
    assert box.queries == sum(a.shape[0] for a in box.answers) == sum(phases.values())
    assert all(torch.is_floating_point(a) and a.dim() == 2 for a in box.answers)
    assert out.extras["edge_subset_size"] == edge and out.extras["config"]["ingredients"] == list(ingredients)
    assert len(out.artifacts["snapshots"]) == TINY["gan_epochs"] + 1
    assert out.extras["deprivatisation_queries"] == gan


@pytest.mark.slow
def test_run_without_edge_images_shows_in_the_record(fmnist_available: bool) -> None:
    from labkit import run_method

    run = run_method("mekd", profile="smoke", progress=False, device="cpu", response="soft", epochs=1,
                     ingredients=("generated",))
    rec = run.record
    assert rec.method == "mekd-soft" and rec.loss == "mekd-alignment" and rec.target_kind == "probabilities"
    assert list(rec.ingredients) == ["generated"] and "distillation: edge images" not in rec.queries_by_phase
    assert rec.ingredients["generated"]["queries"] == rec.queries and rec.holdout_size == 128
    assert rec.transfer_set_size == 640 and rec.extras["distill_seconds"] > 0
    kd = run_method("kd-edge", profile="smoke", progress=False, device="cpu", epochs=1).record
    assert kd.loss == "kd" and list(kd.ingredients) == ["edge-images"]
    assert kd.ingredients["edge-images"] == {"rows": 270, "holdout_rows": 30, "queries": 300} == {
        "rows": kd.transfer_set_size, "holdout_rows": kd.holdout_size, "queries": kd.queries}
    assert kd.extras["edge_subset_size"] == rec.extras["edge_subset_size"] == 300


def test_options_cli_and_errors() -> None:
    from labkit.studies.cli import build_parser

    args = build_parser().parse_args(["run", "mekd", "--response", "hard", "--gan-epochs", "2", "--profile", "smoke"])
    assert args.response == "hard" and args.gan_epochs == 2 and args.ingredients is None
    assert build_parser().parse_args(["run", "mekd", "--ingredients", "generated"]).ingredients == ["generated"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "mekd", "--response", "medium"])
    assert get_method("mekd") is MEKD and get_method("kd-edge") is EdgeKD and EdgeKD.access == "score"
    with pytest.raises(UnknownNameError, match="hard"):
        MEKD(response="fuzzy")
    with pytest.raises(UnknownNameError, match="transfer_size"):
        MEKDConfig.for_profile(get_profile("smoke"), transfer_sise=10)
    with pytest.raises(ConfigError, match="edge_fraction"):
        MEKDConfig.for_profile(get_profile("smoke"), edge_fraction=1.5)
    with pytest.raises(ConfigError, match="generated"):
        MEKDConfig.for_profile("smoke", ingredients=("edge-images",))
    assert MEKDConfig.for_profile("paper").ingredients == ("generated",)
    assert MEKDConfig.for_profile("laptop").ingredients == ("generated", "edge-images")
    # kd-edge's student recipe is MEKD's, profile by profile
    for prof in ("smoke", "laptop", "paper"):
        m, k = MEKDConfig.for_profile(prof), EdgeKDConfig.for_profile(prof)
        assert (k.epochs, k.lr, k.batch_size, k.edge_fraction) == (m.epochs, m.lr, m.batch_size, m.edge_fraction)


def test_gan_settings_are_the_configs_gan_fields() -> None:
    """MEKD's config builds the GAN's settings; the settings refuse an unknown information term by name."""
    cfg = MEKDConfig.for_profile("laptop", deprivatisation="class-head", info_weight=0.25, gan_lr=1e-3)
    s = cfg.gan_settings()
    assert s == GANSettings(gan_epochs=8, g_width=32, d_width=16, gan_batch=128, gan_lr=1e-3, beta1=0.5, beta2=0.999,
                            deprivatisation="class-head", info_weight=0.25, display_scale=3.0)
    assert MEKDConfig.for_profile("smoke").gan_settings().deprivatisation == "teacher-imitation"
    with pytest.raises(UnknownNameError, match="deprivatisation"):
        GANSettings(gan_epochs=1, g_width=8, d_width=4, deprivatisation="imitate")


def test_alignment_exercise_checker() -> None:
    from labkit.teaching.exercises.alignment_loss import check_alignment_loss, reference_alignment

    assert check_alignment_loss(lambda g, s, t, tau: None).attempted is False
    assert check_alignment_loss(reference_alignment).passed
    no_tau = check_alignment_loss(lambda g, s, t, tau: (g(s) - g(t)).abs().mean())
    assert no_tau.attempted and not no_tau.passed and "τ_g" in " ".join(no_tau.messages)
    squared = check_alignment_loss(lambda g, s, t, tau: ((g(s / tau) - g(t / tau)) ** 2).mean())
    assert not squared.passed
    detached = check_alignment_loss(lambda g, s, t, tau: (g(s.detach() / tau) - g(t / tau)).abs().mean())
    assert not detached.passed and "gradient" in " ".join(detached.messages)


def test_widget_and_plots() -> None:
    from matplotlib.figure import Figure

    from labkit.synthesis.base import Snapshot
    from labkit.teaching.plots.generative import (
        accuracy_comparison,
        alignment_pictures,
        class_vector_grid,
        gan_history_plot,
        interpolation_strip,
        snapshot_grid,
    )
    from labkit.teaching.widgets.generative import interpolation_dashboard

    g = freeze(_tiny_generator())
    names = list(INFO.classes)
    student = model_for("lenet5-half", INFO)
    dash = interpolation_dashboard(g, names, classifier=student, first=0, second=5)
    z0 = copy.deepcopy(dash.figure.data[0].z)
    dash.alpha.value = 1.0  # fires the observe callback
    assert dash.figure.data[0].z != z0 and abs(sum(dash.figure.data[1].y) - 1) < 1e-4
    assert "α = 1.00" in dash.figure.layout.title.text
    assert isinstance(class_vector_grid(g, names), Figure)
    assert isinstance(interpolation_strip(g, 0, 5, names, steps=4, probs=torch.softmax(torch.randn(4, 10), 1)), Figure)
    snaps = [Snapshot(i, torch.rand(10, 1, 28, 28), torch.arange(10)) for i in range(2)]
    assert isinstance(snapshot_grid(snaps, names), Figure)
    x = torch.rand(3, 1, 28, 28)
    assert isinstance(alignment_pictures(x, x, x.flip(0), ["a"] * 3, ["b"] * 3), Figure)
    fig = accuracy_comparison({"mekd-soft": 0.8, "kd-edge": 0.85}, teacher_acc=0.9, queries={"kd-edge": 10})
    assert list(fig.data[0].y) == [80.0, 85.0]
    assert isinstance(gan_history_plot({"soft": [{"epoch": 1, "teacher_agrees": 0.5}]}), Figure)


@pytest.mark.parametrize("response", ["soft", "hard"])
def test_the_online_stream_answers_fresh_images_at_every_step(teacher, response: str) -> None:
    access = "score" if response == "soft" else "decision"
    method, box, out = _tiny_run(teacher, response, access, ingredients=("generated",), stream=True,
                                 deprivatisation="authors-code", inverse_check=50)
    gan = round(640 * 0.1) * TINY["gan_epochs"]
    assert box.queries_by_phase == {"deprivatisation: G(z)": gan, "inverse check: G(z)": 50,
                                    "distillation: G(z)": TINY["holdout_size"]}  # only the holdout is fixed
    assert out.size == TINY["transfer_size"] and out.holdout_size == TINY["holdout_size"]
    train_student(out, _ctx())  # one epoch of 192 placeholders in batches of 64: three fresh batches
    assert box.queries_by_phase["distillation: G(z) stream"] == 3 * TINY["batch_size"] == TINY["transfer_size"]
    stream = box.answers[-3:]
    assert all(a.shape[0] == 64 for a in stream)
    if response == "soft":  # a fresh batch at every step, not one set repeated (a 1-epoch G's ids may all agree)
        assert len({float(a.sum()) for a in stream}) > 1
    inverse = out.extras["inverse_check"]
    assert 0 <= inverse["agreement_with_argmax_z"] <= 1 and inverse["images"] == 50
    assert ("kl_softmax_z_to_teacher" in inverse) == (response == "soft")
    with pytest.raises(ConfigError, match="edge-images"):
        MEKDConfig.for_profile("smoke", stream=True, ingredients=("generated", "edge-images"))


def test_the_code_and_text_information_weights() -> None:
    from labkit.synthesis.deprivatisation import information_weight

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert torch.equal(information_weight(probs, "soft", "authors-code"), torch.tensor([0.0, 2.0]))  # class indices
    assert torch.allclose(information_weight(probs, "soft", "paper-text"), torch.tensor([0.7, 0.6]))
    ids = torch.tensor([0, 2])
    assert torch.equal(information_weight(ids, "hard", "authors-code"), torch.tensor([0.0, 2.0]))
    assert torch.equal(information_weight(ids, "hard", "paper-text"), torch.ones(2))


def test_the_authors_gan_layout_has_their_layers() -> None:
    """layout="authors": G with three convs, D with four strided 3×3 blocks and dropout (their DCGAN.py); images in
    [0, 1]; the paper variants use it, and an unknown layout is a clear error."""
    torch.manual_seed(0)
    g = build_generator(INFO, 16, "authors")
    d = build_discriminator(INFO, 4, "authors")
    convs_g = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]
    convs_d = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs_g] == [16, 8, 1] and [c.out_channels for c in convs_d] == [4, 8, 16, 32]
    assert all(c.stride == (2, 2) for c in convs_d) and any(isinstance(m, torch.nn.Dropout2d) for m in d.modules())
    x = g(torch.randn(5, 10)).detach()
    assert x.shape == (5, 1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
    real_fake, classes = d(x)
    assert real_fake.shape == (5,) and classes.shape == (5, 10)
    for v in ("paper", "authors-code", "fixed-set"):
        assert MEKDConfig.for_profile("laptop", variant=v).gan_settings().gan_layout == "authors"
    assert MEKDConfig.for_profile("laptop").gan_layout == "lab"
    with pytest.raises(UnknownNameError, match="layout"):
        GANSettings(gan_epochs=1, g_width=8, d_width=4, gan_layout="wide")
