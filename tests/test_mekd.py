"""MEKD: the frozen generator passes gradients but never changes, hard mode never sees probabilities,
query counts are exact, and the notebook helpers (exercise, widget, plots) behave."""
from __future__ import annotations

import copy

import pytest
import torch

from labkit.blackbox import BlackBox
from labkit.data import dataset_info, load_dataset
from labkit.errors import AccessDenied, UnknownNameError
from labkit.generators import ResponseGenerator, build_generator, centre_responses, freeze, interpolate_responses
from labkit.methods.base import MethodData, RunContext, get_method
from labkit.methods.mekd import (MEKD, GenerativeAlignmentLoss, GeneratorSynthesizer, MEKDConfig, distill_with_generator,
                                 response_logits)
from labkit.models import model_for
from labkit.profiles import get_profile

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


@pytest.mark.parametrize("mix", [False, True])
def test_distillation_leaves_generator_unchanged(teacher, mix: bool) -> None:
    g = _tiny_generator()
    before = _state(g)
    box = BlackBox(teacher.model, access="score", input_shape=(1, 28, 28), num_classes=10)
    cfg = MEKDConfig.for_profile(get_profile("smoke"), **TINY, edge_mix=mix)
    student = model_for("lenet5-half", INFO)
    w0 = [p.detach().clone() for p in student.parameters()]
    edge = torch.rand(50, 1, 28, 28)
    facts, arts = distill_with_generator(box, g, student, 10, cfg, response="soft", device=torch.device("cpu"),
                                         progress=False, edge_images=edge)
    after = _state(g)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, p) for a, p in zip(w0, student.parameters()))
    if mix:  # the edge images join the transfer set; 10% of them (teacher-labelled) select the epoch
        assert box.queries_by_phase == {"distillation: G(z)": cfg.transfer_size, "distillation: edge images": 50}
        assert facts["transfer_size"] == cfg.transfer_size + 45 and facts["holdout_size"] == 5
        assert facts["edge_in_transfer"] == 45 and facts["generated_size"] == cfg.transfer_size
    else:  # edge_mix off: edge images handed over are ignored, never sent
        assert box.queries == cfg.transfer_size + cfg.holdout_size == box.queries_by_phase["distillation: G(z)"]
        assert facts["transfer_size"] == cfg.transfer_size and facts["holdout_size"] == cfg.holdout_size
    assert sum(facts["class_histogram"]) == facts["transfer_size"]
    generated = cfg.transfer_size + (0 if mix else cfg.holdout_size)
    assert isinstance(arts["synthesizer"], GeneratorSynthesizer) and arts["synthesizer"].bank_size == generated


def _tiny_run(teacher, response: str, access: str, **options) -> tuple[MEKD, SpyBox, object]:
    data = load_dataset("fashion-mnist", "train", limit=640, seed=0)
    box = SpyBox(BlackBox(teacher.model, access=access, input_shape=(1, 28, 28), num_classes=10))
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", INFO, progress=False)
    method = MEKD(response=response, **{**TINY, **options})
    out = method.distill(box, MethodData(INFO, unlabeled=data.x), ctx)  # type: ignore[arg-type]
    return method, box, out


def test_hard_mode_never_sees_probabilities(teacher) -> None:
    method = MEKD(response="hard")
    assert method.access == "decision" and method.label == "mekd-hard"
    assert MEKD(response="soft").access == "score" and MEKD().label == "mekd-soft"
    method, box, out = _tiny_run(teacher, "hard", "decision")
    assert box.answers, "the method asked the teacher nothing"
    for ans in box.answers:  # every answer the method got was a vector of class ids
        assert ans.dtype == torch.int64 and ans.dim() == 1 and not torch.is_floating_point(ans)
    # a score box is refused outright: hard mode must not be able to see probabilities
    score_box = BlackBox(teacher.model, access="score", input_shape=(1, 28, 28), num_classes=10)
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", INFO, progress=False)
    with pytest.raises(AccessDenied, match="never see probabilities"):
        method.distill(score_box, MethodData(INFO, unlabeled=torch.rand(64, 1, 28, 28)), ctx)  # type: ignore[arg-type]
    assert score_box.queries == 0


@pytest.mark.parametrize("edge_mix", [True, False])
def test_soft_run_counts_every_query_exactly(teacher, edge_mix: bool) -> None:
    method, box, out = _tiny_run(teacher, "soft", "score", edge_mix=edge_mix)
    edge = round(640 * 0.1)
    phases = box.queries_by_phase
    if edge_mix:
        # the edge images are answered once (counted) and join the generated transfer set; a teacher-labelled
        # 10% of them selects the epoch instead of a generated holdout
        held = round(edge * 0.1)
        assert phases == {"deprivatisation: G(z)": edge * TINY["gan_epochs"],
                          "distillation: G(z)": TINY["transfer_size"], "distillation: edge images": edge}
        assert out.transfer_set_size == TINY["transfer_size"] + edge - held
        assert out.extras["edge_in_transfer"] == edge - held and out.extras["generated_in_transfer"] == TINY["transfer_size"]
        assert out.selection == "teacher-labelled holdout of the edge images"
    else:
        # the generated-only ablation: the private edge images are never sent to the teacher, only G's samples are
        assert phases == {"deprivatisation: G(z)": edge * TINY["gan_epochs"],
                          "distillation: G(z)": TINY["transfer_size"] + TINY["holdout_size"]}
        assert out.transfer_set_size == TINY["transfer_size"] and out.extras["edge_in_transfer"] == 0
        assert out.selection == "teacher-labelled holdout of generated images"
    assert out.extras["edge_mix"] is edge_mix
    assert box.queries == sum(a.shape[0] for a in box.answers) == sum(phases.values())
    assert all(torch.is_floating_point(a) and a.dim() == 2 for a in box.answers)
    assert out.extras["edge_subset_size"] == edge
    assert out.selection.startswith("teacher-labelled holdout") and 0 <= out.val_acc <= 1
    assert len(out.artifacts["snapshots"]) == TINY["gan_epochs"] + 1
    assert out.extras["deprivatisation_queries"] == edge * TINY["gan_epochs"]


def test_options_cli_and_errors() -> None:
    from labkit.cli import build_parser

    args = build_parser().parse_args(["run", "mekd", "--response", "hard", "--gan-epochs", "2", "--profile", "smoke"])
    assert args.response == "hard" and args.gan_epochs == 2 and args.edge_mix is None
    assert build_parser().parse_args(["run", "mekd", "--no-edge-mix"]).edge_mix is False
    assert get_method("mekd") is MEKD and get_method("kd-edge").access == "score"
    with pytest.raises(UnknownNameError, match="hard"):
        MEKD(response="fuzzy")
    with pytest.raises(UnknownNameError, match="transfer_size"):
        MEKDConfig.for_profile(get_profile("smoke"), transfer_sise=10)
    with pytest.raises(ValueError, match="edge_fraction"):
        MEKDConfig.for_profile(get_profile("smoke"), edge_fraction=1.5)


def test_alignment_exercise_checker() -> None:
    from labkit.exercises.alignment_loss import check_alignment_loss, reference_alignment

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

    from labkit.plots.generative import (accuracy_comparison, alignment_pictures, class_vector_grid, gan_history_plot,
                                         interpolation_strip, snapshot_grid)
    from labkit.synthesis import Snapshot
    from labkit.widgets.generative import interpolation_dashboard

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
