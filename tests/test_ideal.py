"""IDEAL: decision box only (int64 ids, exact query count), the budget, the information term and the holdout."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from labkit import BlackBox
from labkit.core.errors import AccessDenied, ConfigError
from labkit.methods.ideal import IDEALConfig, public_code_queries, split_holdout
from labkit.studies.runner import run_method
from labkit.synthesis.ideal_rounds import (
    IDEALSynthesizer,
    RoundSettings,
    crop_and_flip,
    generator_loss,
    information_loss,
)

TINY = {"queries": 250, "per_round": 60, "g_steps": 2, "nz": 8, "g_width": 4, "epochs": 1, "batch_size": 32,
        "guide_batch": 32, "curve_points": 2}


def test_the_method_sees_only_int64_ids_and_its_count_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[torch.Tensor] = []
    sent: list[int] = []
    original = BlackBox.__call__

    def spy(self: BlackBox, x: torch.Tensor, *, phase: str | None = None) -> torch.Tensor:
        out = original(self, x, phase=phase)
        answers.append(out)
        sent.append(int(x.shape[0]))
        return out

    monkeypatch.setattr(BlackBox, "__call__", spy)
    run = run_method("ideal", profile="smoke", progress=False, **TINY)
    rounds = 250 // 60
    assert run.box is not None and run.box.access == "decision"
    assert all(a.dtype == torch.int64 and a.dim() == 1 for a in answers)  # never a probability
    assert sent == [60] * rounds  # one call per round, nothing else
    rec = run.record
    assert rec.queries == run.box.queries == sum(sent) == rounds * 60
    assert rec.queries_by_phase == {"teacher labels": rounds * 60} and rec.calls == rounds
    assert rec.transfer_set_size + rec.holdout_size == rec.queries  # every labelled image is used once
    assert rec.ingredients["generated"]["queries"] == rec.queries
    assert rec.selection.startswith("teacher-labelled holdout") and rec.extras["rounds"] == rounds
    assert len(run.artifacts["curve"]) == 2 and run.artifacts["curve"][-1]["queries"] == rec.queries
    assert len(run.artifacts["snapshots"]) == rounds
    # the public code's student, the guide after every round, is reported beside the fresh one (test only)
    states = run.artifacts["reported_students"]["round-trained"]
    assert len(states) == rounds and states[-1] is run.artifacts["curve"][-1]["state"]
    guide = rec.extras["reported_students"]["round-trained"]
    assert guide["steps"] == rounds and 1 <= guide["best_at"] <= rounds
    assert 0 <= guide["last_test_acc"] <= guide["best_test_acc"] <= 1
    from labkit.core.data import load_dataset
    from labkit.core.metrics import accuracy

    probe = run.student
    probe.load_state_dict(states[-1])  # the last round's weights give the last figure, on the test split
    test = load_dataset("fashion-mnist", "test")
    assert accuracy(probe, test.x, test.y) == pytest.approx(guide["last_test_acc"])


def test_round_samples_are_a_named_ingredient_with_their_own_call_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str | None, int]] = []
    original = BlackBox.__call__

    def spy(self: BlackBox, x: torch.Tensor, *, phase: str | None = None) -> torch.Tensor:
        sent.append((phase or self._phase, int(x.shape[0])))
        return original(self, x, phase=phase)

    monkeypatch.setattr(BlackBox, "__call__", spy)
    opts = {**TINY, "queries": 300, "ingredients": ("generated", "round-samples"), "round_samples": 40,
            "student_augment": True}
    run = run_method("ideal", profile="smoke", progress=False, **opts)
    rounds = 300 // 100
    assert sent == [("teacher labels", 60), ("teacher labels (round samples)", 40)] * rounds
    rec = run.record
    assert rec.queries_by_phase == {"teacher labels": 60 * rounds, "teacher labels (round samples)": 40 * rounds}
    ing = rec.ingredients
    assert ing["generated"]["queries"] == 60 * rounds and ing["round-samples"]["queries"] == 40 * rounds
    for name, per in (("generated", 60), ("round-samples", 40)):
        assert ing[name]["rows"] + ing[name]["holdout_rows"] == per * rounds
    assert run.transfer.recipe.augment is not None  # the student_augment addition is on, and named in the options
    with pytest.raises(ConfigError, match="round_samples >= 1"):
        IDEALConfig.for_profile("smoke", ingredients=("generated", "round-samples"))
    with pytest.raises(ConfigError, match="'generated' ingredient"):
        IDEALConfig.for_profile("smoke", ingredients=("round-samples",), round_samples=10)


def test_a_score_box_and_a_too_small_budget_are_refused() -> None:
    from torch import nn

    from labkit.core.data import dataset_info
    from labkit.core.profiles import get_profile
    from labkit.methods.base import MethodData, RunContext
    from labkit.methods.ideal import IDEAL

    info = dataset_info("fashion-mnist")
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", info, False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(AccessDenied, match="decision"):
        IDEAL(**TINY).distill(BlackBox(model, access="score"), MethodData(info), ctx)
    with pytest.raises(ConfigError, match="budget"):
        IDEAL(**TINY).distill(BlackBox(model, access="decision", budget=30), MethodData(info), ctx)
    with pytest.raises(ConfigError, match="pays for no round"):
        IDEALConfig.for_profile("smoke", queries=50, per_round=60)


def test_round_settings_count_the_round_samples_only_when_the_ingredient_is_on() -> None:
    """The rounds get the round samples from the config's ingredient, not from its round_samples size alone."""
    paper = IDEALConfig.for_profile("smoke", round_samples=40).round_settings()
    assert (paper.per_round, paper.extra_per_round, paper.images_per_round) == (100, 0, 100)
    more = IDEALConfig.for_profile("smoke", variant="round-samples").round_settings()
    assert (more.extra_per_round, more.images_per_round) == (100, 200)
    assert (more.g_steps, more.nz, more.g_width, more.guide_batch, more.info_mode) == (3, 32, 8, 64, "paper")


def test_the_synthesizer_runs_as_many_rounds_as_the_budget_pays_for() -> None:
    """synthesize(n): n // images_per_round rounds, every image labelled once, round samples marked."""
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4, 3))
    box = BlackBox(model, access="decision", input_shape=(1, 4, 4), num_classes=3)
    settings = RoundSettings(per_round=6, g_steps=1, nz=4, g_width=2, guide_batch=4, extra_per_round=3,
                             curve_points=1)
    synth = IDEALSynthesizer(box, settings, lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), 3, (1, 4, 4))
    res = synth.synthesize(20, progress=False)
    assert res.extras["rounds"] == 2 and len(res) == 18 == box.queries
    assert box.queries_by_phase == {"teacher labels": 12, "teacher labels (round samples)": 6}
    assert res.extras["is_round_sample"].tolist() == ([False] * 6 + [True] * 3) * 2
    with pytest.raises(AccessDenied):
        IDEALSynthesizer(BlackBox(model, access="score"), settings, nn.Identity, 3, (1, 4, 4))


def test_information_term_is_the_class_balance() -> None:
    c = 10
    balanced = torch.eye(c) * 20.0  # every class once, confidently
    one_class = torch.zeros(c, c)
    one_class[:, 3] = 20.0
    assert math.isclose(float(information_loss(balanced, "paper")), -math.log(c), rel_tol=1e-4)
    assert math.isclose(float(information_loss(one_class, "paper")), 0.0, abs_tol=1e-4)
    uniform = torch.zeros(4, c)  # the public code's term: mean p log p, lowest for flat predictions
    assert math.isclose(float(information_loss(uniform, "authors")), -math.log(c) / c, rel_tol=1e-5)
    assert float(information_loss(balanced, "authors")) > float(information_loss(uniform, "authors"))
    y = torch.arange(c)
    assert math.isclose(float(generator_loss(balanced, y, 0.0)), float(torch.nn.functional.cross_entropy(balanced, y)))
    with pytest.raises(ConfigError, match="info_mode"):
        information_loss(balanced, "other")


def test_crop_and_flip_keeps_shape_and_gradient() -> None:
    x = torch.rand(6, 1, 28, 28, requires_grad=True)
    out = crop_and_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_public_code_query_count_replays_its_loop() -> None:
    """The public code's loop, replayed with a counting box: each round adds a batch to the pool, then labels the
    whole pool again. Its count is the closed form, and the MNIST command (250 x 100) asks 1,262,500 times."""
    box = BlackBox(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10)), access="decision")
    pool: list[torch.Tensor] = []
    for _ in range(7):
        pool.append(torch.rand(3, 1, 4, 4))
        box(torch.cat(pool).flip(-1))  # kd_train: every pooled image, flipped at random, asked again
    assert box.queries == public_code_queries(3, 7) == 3 * 7 * 8 // 2
    paper = IDEALConfig.for_profile("paper")  # the public code's MNIST command: 100 rounds of 250
    assert (paper.per_round, paper.rounds, paper.queries) == (250, 100, 25_000)  # what the paper counts
    assert public_code_queries(paper.per_round, paper.rounds) == 1_262_500
    with pytest.raises(ConfigError):
        public_code_queries(-1, 3)


def test_holdout_takes_the_same_share_of_every_round() -> None:
    round_of = torch.arange(5).repeat_interleave(100)
    mask = split_holdout(round_of, 0.1, seed=0)
    assert torch.bincount(round_of[mask], minlength=5).tolist() == [10] * 5
    assert torch.equal(mask, split_holdout(round_of, 0.1, seed=0))


def test_the_exercise_checker_accepts_the_reference_and_explains_mistakes() -> None:
    from labkit.teaching.exercises.information_loss import check_information_loss

    assert check_information_loss(lambda z: information_loss(z, "paper")).passed
    assert not check_information_loss(lambda z: None).attempted
    per_sample = check_information_loss(
        lambda z: (torch.softmax(z, 1) * torch.log_softmax(z, 1)).sum(1).mean())
    assert not per_sample.passed and "batch *first*" in " ".join(per_sample.messages)
    flipped = check_information_loss(lambda z: -information_loss(z, "paper"))
    assert not flipped.passed and "sign" in " ".join(flipped.messages)
    raised = check_information_loss(lambda z: z.nonexistent())
    assert not raised.passed and raised.attempted


def test_the_public_codes_loop_asks_again_for_the_whole_pool_flipped() -> None:
    """requery_pool: round r sends every pooled image (r·per_round) in one call, each flipped by its own coin; the
    student gets each image once, as last sent, with the answer to exactly that input."""
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4, 3))
    box = BlackBox(model, access="decision", input_shape=(1, 4, 4), num_classes=3)
    settings = RoundSettings(per_round=6, g_steps=1, nz=4, g_width=2, guide_batch=4, curve_points=1,
                             requery_pool=True, g_init="authors")
    assert [settings.rounds_for(b) for b in (5, 6, 17, 18, 36, 59, 60)] == [0, 1, 1, 2, 3, 3, 4]
    assert settings.queries_after(4) == 60 == public_code_queries(6, 4)
    sent: list[int] = []
    original = BlackBox.__call__

    def spy(self: BlackBox, x: torch.Tensor, *, phase: str | None = None) -> torch.Tensor:
        sent.append(int(x.shape[0]))
        return original(self, x, phase=phase)

    synth = IDEALSynthesizer(box, settings, lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), 3, (1, 4, 4))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BlackBox, "__call__", spy)
        res = synth.synthesize(59, progress=False)
    assert res.extras["rounds"] == 3 and sent == [6, 12, 18] and box.queries == 36
    assert box.queries_by_phase == {"teacher labels (flipped pool)": 36}
    assert [h["queries"] for h in res.extras["history"]] == [6, 18, 36]
    assert len(res) == 18 and torch.equal(res.targets, model(res.images).argmax(1))  # the answer to that input
    assert 18 <= res.extras["distinct_inputs"] <= 36  # each image has two inputs at most: itself and its mirror
    with pytest.raises(ConfigError, match="do not combine"):
        IDEALConfig.for_profile("smoke", "fashion-mnist", requery_pool=True, variant="round-samples")


def test_the_generators_public_code_initialisation() -> None:
    """g_init="authors": N(0, 0.02) weights, N(1, 0.02) BatchNorm scales, zero biases; the default is untouched."""
    from torch import nn

    from labkit.synthesis.generators import LatentGenerator

    g = LatentGenerator(64, (1, 28, 28), width=32)
    torch.manual_seed(1)
    g.reset_parameters()
    default = [p.detach().clone() for p in g.parameters()]
    torch.manual_seed(1)
    fresh = LatentGenerator(64, (1, 28, 28), width=32)
    torch.manual_seed(1)
    fresh.reset_parameters("pytorch")
    assert all(torch.equal(a, b) for a, b in zip(default, fresh.parameters()))
    g.reset_parameters("authors")
    g.requires_grad_(False)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(abs(float(m.weight.std()) - 0.02) < 0.004 and abs(float(m.weight.mean())) < 0.004 for m in convs)
    assert all(abs(float(m.weight.mean()) - 1) < 0.01 for m in norms)
    assert all(float(m.bias.abs().max()) == 0 for m in convs + norms if m.bias is not None)
    with pytest.raises(ValueError, match="authors"):
        g.reset_parameters("xavier")


def test_the_public_codes_cnn_is_a_registered_pair() -> None:
    from labkit.core.models import build_model, count_parameters

    net = build_model("ideal-cnn")
    assert count_parameters(net) == (16 * 25 + 16) + 2 * 16 + (32 * 16 * 25 + 32) + 2 * 32 + (32 * 7 * 7 * 10 + 10)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 2


def test_the_generator_steps_take_their_own_precision_and_the_record_says_which(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``g_precision``: the generator steps alone in bf16 (the box stays fp32); ``auto`` picks bf16 only where the
    device has it; an explicit bf16 on a CPU without it is refused with what to do."""
    import labkit.core.blackbox
    import labkit.methods.ideal as ideal_module
    from labkit.core.data import dataset_info
    from labkit.core.profiles import get_profile
    from labkit.methods.base import RunContext

    seen: list[str] = []
    original = ideal_module.IDEALSynthesizer.__init__

    def spy(self: object, box: BlackBox, settings: RoundSettings, *args: object, **kwargs: object) -> None:
        seen.append(settings.precision)
        original(self, box, settings, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ideal_module.IDEALSynthesizer, "__init__", spy)
    plain = run_method("ideal", profile="smoke", progress=False, **TINY).record
    assert seen[-1] == "fp32" and plain.synthesis_precision == "fp32" and plain.box_precision == "fp32"
    ctx = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "lenet5-half", dataset_info("fashion-mnist"),
                     progress=False)
    assert ideal_module.generator_precision("run", ctx) == ctx.synthesis_precision == "fp32"
    assert ideal_module.generator_precision("fp32", ctx) == "fp32"
    monkeypatch.setattr(labkit.core.blackbox, "cpu_has_bf16", lambda: False)  # one place decides, for box and G
    assert ideal_module.generator_precision("auto", ctx) == "fp32"
    with pytest.raises(ConfigError, match="precision='fp32'"):
        ideal_module.generator_precision("bf16", ctx)
    monkeypatch.setattr(labkit.core.blackbox, "cpu_has_bf16", lambda: True)
    assert ideal_module.generator_precision("auto", ctx) == "bf16"
    run = run_method("ideal", profile="smoke", progress=False, g_precision="auto", **TINY)
    assert seen[-1] == "bf16" and run.record.synthesis_precision == "bf16" and run.record.box_precision == "fp32"
    assert "synthesis_precision" not in run.record.extras  # the record's own field says it, once


@pytest.mark.parametrize("cin,cout,side", [(3, 5, 7), (16, 8, 14)])
def test_the_fused_upsample_conv_is_upsample_then_conv(cin: int, cout: int, side: int) -> None:
    """UpsampleConv2d (one stride-2 transposed conv) computes nearest ×2 upsampling then its 3×3 convolution, values
    and gradients, with the same parameters; the control (a plain conv on the upsampled input with the kernel
    flipped) differs, so the comparison can fail."""
    import torch.nn.functional as F

    from labkit.synthesis.generators import UpsampleConv2d

    torch.manual_seed(0)
    layer = UpsampleConv2d(cin, cout)
    x = torch.randn(3, cin, side, side, requires_grad=True)

    def written_out(weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, layer.bias, padding=1)

    fused, plain = layer(x), written_out(layer.weight)
    assert fused.shape == (3, cout, 2 * side, 2 * side)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(fused.square().sum(), [x, layer.weight, layer.bias]),
                    torch.autograd.grad(plain.square().sum(), [x, layer.weight, layer.bias])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    control = written_out(layer.weight.flip(-1, -2))
    assert (control - fused).abs().max() > 1e-2


def test_the_latent_generator_is_the_same_function_fused_or_not() -> None:
    """The generator with its upsample-convs fused and written out (the default): the same parameters (state dict
    shapes in the same order) and the same images for the same weights."""
    from labkit.synthesis.generators import LatentGenerator, UpsampleConv2d

    torch.manual_seed(3)
    fused = LatentGenerator(16, (1, 28, 28), width=8, fused_upsample=True)
    torch.manual_seed(3)
    plain = LatentGenerator(16, (1, 28, 28), width=8)
    assert sum(isinstance(m, UpsampleConv2d) for m in fused.modules()) == 2
    assert not any(isinstance(m, UpsampleConv2d) for m in plain.modules())
    assert [p.shape for p in fused.parameters()] == [p.shape for p in plain.parameters()]
    z = torch.randn(5, 16)
    torch.testing.assert_close(fused(z), plain(z), rtol=1e-5, atol=1e-5)


def test_the_fused_upsample_option_reaches_the_rounds_generator() -> None:
    """``fused_upsample`` (off by default: the committed rows ran without it) reaches the rounds' settings, and the
    synthesizer then builds G with the fused layers."""
    from unittest import mock

    from labkit.synthesis import ideal_rounds

    assert IDEALConfig.for_profile("smoke", "fashion-mnist").round_settings().fused_upsample is False
    settings = IDEALConfig.for_profile("smoke", "fashion-mnist", fused_upsample=True).round_settings()
    assert settings.fused_upsample is True
    built: list[bool] = []
    real = ideal_rounds.LatentGenerator

    def spy(*args: object, **kwargs: object) -> object:
        built.append(bool(args[3]) if len(args) > 3 else bool(kwargs.get("fused_upsample")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    from labkit.core.models import build_model

    teacher = build_model("lenet5", 1, 10, 28).eval()
    box = BlackBox(teacher, access="decision", input_shape=(1, 28, 28), num_classes=10, device="cpu")
    with mock.patch.object(ideal_rounds, "LatentGenerator", spy):
        ideal_rounds.IDEALSynthesizer(box, replace(settings, g_steps=1), lambda: build_model("lenet5-half", 1, 10, 28),
                                      10, (1, 28, 28)).synthesize(settings.per_round, progress=False)
    assert built == [True]
