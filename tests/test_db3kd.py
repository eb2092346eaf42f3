"""DB3KD: configuration, budgets, the loss, exact query counts, and decision-only access end to end."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import BlackBox
from labkit.core.errors import ConfigError, InvalidQueryError, UnknownNameError
from labkit.core.losses import SoftLabelKD, build_loss, registered_name
from labkit.core.profiles import get_profile
from labkit.methods.db3kd import DB3KD, DB3KDConfig, DistanceLabelLoss, distance_labels, pair_budgets


def test_config_per_profile_and_bad_options() -> None:
    smoke, laptop, paper = (DB3KDConfig.for_profile(get_profile(p)) for p in ("smoke", "laptop", "paper"))
    assert (smoke.queries_per_sample, laptop.queries_per_sample, paper.queries_per_sample) == (60, 100, 2000)
    assert (smoke.train_size, smoke.soft_size, laptop.train_size, laptop.soft_size) == (1000, 300, None, 2000)
    assert paper.train_size is None and paper.soft_size is None
    assert paper.measure == "mbd" and laptop.measure == "bd"
    assert smoke.ingredients == laptop.ingredients == ("distance-soft-labels", "true-label-rows")
    assert paper.ingredients == ("distance-soft-labels",)
    assert DB3KDConfig.for_profile(get_profile("smoke"), tau=4.0, queries_per_sample=None).tau == 4.0
    with pytest.raises(UnknownNameError, match="measure"):
        DB3KDConfig.for_profile(get_profile("smoke"), measure="xyz")
    with pytest.raises(UnknownNameError):
        DB3KDConfig.for_profile(get_profile("smoke"), temperature=3.0)
    with pytest.raises(UnknownNameError):
        DB3KDConfig.for_profile(get_profile("smoke"), queries=100)  # renamed queries_per_sample
    with pytest.raises(UnknownNameError, match="ingredient"):
        DB3KDConfig.for_profile(get_profile("smoke"), ingredients=("noise-bank",))


def test_true_label_rows_need_rows_left_over() -> None:
    """Both ingredients on while every row is soft-labelled is refused, naming the way out."""
    with pytest.raises(ConfigError, match="true-label-rows"):
        DB3KDConfig.for_profile(get_profile("paper"), ingredients=("distance-soft-labels", "true-label-rows"))
    with pytest.raises(ConfigError, match="true-label-rows"):
        DB3KDConfig.for_profile(get_profile("smoke"), train_size=200, soft_size=200)
    cfg = DB3KDConfig.for_profile(get_profile("smoke"), train_size=200, soft_size=200,
                                  ingredients=("distance-soft-labels",))
    assert not cfg.uses("true-label-rows")


def test_cli_flags_are_generated_from_the_fields() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    added = DB3KD.add_arguments(parser)
    assert "queries_per_sample" in added and "queries" not in added
    ns = parser.parse_args(["--queries-per-sample", "28", "--ingredients", "distance-soft-labels"])
    assert ns.queries_per_sample == 28 and ns.ingredients == ["distance-soft-labels"]


def test_pair_budgets_split_the_sample_budget() -> None:
    assert pair_budgets(100, 10, "sd", 0.3) == (0, 0)
    assert pair_budgets(100, 10, "bd", 0.3) == (11, 0)
    bd, so = pair_budgets(2000, 10, "mbd", 0.3)
    assert bd + so == 222 and bd == 67
    assert 1 + 9 * (bd + so) <= 2000
    with pytest.raises(InvalidQueryError, match="too small"):
        pair_budgets(10, 10, "bd", 0.3)


def test_loss_form_is_documented_alpha_ce_plus_tau2_kl() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g) * 3
    soft = torch.softmax(torch.randn(16, 5, generator=g), 1)
    y = torch.randint(0, 5, (16,), generator=g)
    tau, alpha = 4.0, 0.3
    loss = DistanceLabelLoss(tau, alpha)
    assert registered_name(loss) == "db3kd-distance"
    assert isinstance(build_loss("db3kd-distance", tau=tau, alpha=alpha), DistanceLabelLoss)
    all_soft = loss(logits, soft, y, torch.ones(16, dtype=torch.bool))
    want = alpha * F.cross_entropy(logits, y) + (1 - alpha) * tau ** 2 * F.kl_div(
        F.log_softmax(logits / tau, 1), soft, reduction="batchmean")
    assert torch.allclose(all_soft, want, atol=1e-5)
    assert torch.allclose(all_soft, SoftLabelKD(tau, alpha)(logits, soft, y), atol=1e-5)
    none_soft = loss(logits, soft, y, torch.zeros(16, dtype=torch.bool))
    assert torch.allclose(none_soft, F.cross_entropy(logits, y), atol=1e-6)
    half = torch.arange(16) < 8
    mixed = loss(logits, soft, y, half)
    assert torch.allclose(mixed, (loss(logits[:8], soft[:8], y[:8], half[:8]) * 8 +
                                  F.cross_entropy(logits[8:], y[8:]) * 8) / 16, atol=1e-5)


class CountingImageTeacher(nn.Module):
    """A tiny random conv teacher on 1×8×8 images that counts rows and records output dtypes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 36, 4))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.net(x - 0.5) * 5


@pytest.mark.parametrize("measure,queries", [("sd", 0), ("bd", 31), ("mbd", 151)])
def test_distance_labels_exact_counts_and_budget(measure: str, queries: int) -> None:
    model = CountingImageTeacher()
    box = BlackBox(model, access="decision", input_shape=(1, 8, 8), num_classes=4)
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = box(x)
    box.reset_counter()
    model.seen = 0
    cfg = DB3KDConfig.for_profile(get_profile("smoke"), measure=measure, queries_per_sample=max(queries, 7), tau=2.0,
                                  n_probes=6)
    out = distance_labels(box, x, y, 4, cfg)
    assert out["queries"].sum() == box.queries == model.seen
    if measure == "sd":
        assert box.queries == 0
    else:
        assert int(out["queries"].max()) <= queries
        assert box.queries_by_phase["teacher labels"] == 60
    soft = out["soft"]
    assert soft.shape == (60, 4) and torch.allclose(soft.sum(1), torch.ones(60))
    assert (soft.argmax(1) == out["teacher_label"]).all()


def test_distance_labels_refuse_a_score_box() -> None:
    model = CountingImageTeacher()
    score = BlackBox(model, access="score", input_shape=(1, 8, 8), num_classes=4)
    cfg = DB3KDConfig.for_profile(get_profile("smoke"), measure="bd", queries_per_sample=31)
    with pytest.raises(InvalidQueryError, match="decision box"):
        distance_labels(score, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), 4, cfg)


@pytest.mark.slow
def test_db3kd_end_to_end_sees_only_class_ids(teacher, tmp_path, monkeypatch) -> None:
    """The CLI run writes a decision-access record; a spy on the box sees only int64 answers."""
    from labkit.studies.cli import main

    seen = {"images": 0, "calls": 0}
    original = BlackBox.__call__

    def spy(self: BlackBox, x: torch.Tensor, **kw: object) -> torch.Tensor:
        out = original(self, x, **kw)
        assert self.access == "decision"
        assert out.dtype == torch.int64 and out.dim() == 1, "DB3KD must never receive probabilities"
        seen["images"] += x.shape[0]
        seen["calls"] += 1
        return out

    monkeypatch.setattr(BlackBox, "__call__", spy)
    out = tmp_path / "db3kd.json"
    rc = main(["run", "db3kd", "--profile", "smoke", "--device", "cpu", "--no-progress", "--measure", "bd",
               "--queries-per-sample", "28", "--train-size", "256", "--soft-size", "64", "--epochs", "1",
               "--out", str(out)])
    assert rc == 0
    records = json.loads(out.read_text())
    rec = records[-1]
    assert rec["method"] == "db3kd" and rec["access"] == "decision"
    assert rec["queries"] == seen["images"] > 0
    assert rec["queries_by_phase"]["teacher labels"] == 64
    assert rec["extras"]["max_queries_per_sample"] <= 28
    assert math.isclose(rec["extras"]["queries_per_sample"] * 64, rec["queries"], rel_tol=1e-3)
    assert rec["transfer_set_size"] == 256 and 0 < rec["student_acc"] <= 1
    assert rec["loss"] == "db3kd-distance" and rec["target_kind"] == "distance-soft-labels"
    assert rec["options"]["queries_per_sample"] == 28
    assert rec["ingredients"] == {"distance-soft-labels": {"rows": 64, "holdout_rows": 0, "queries": rec["queries"]},
                                  "true-label-rows": {"rows": 192, "holdout_rows": 0, "queries": 0}}


@pytest.mark.slow
def test_ingredient_switch_trains_on_the_chosen_rows_and_is_recorded(teacher) -> None:
    """Without true-label rows the student sees only the soft-labelled images; without soft labels, no query."""
    from labkit.studies.runner import run_method

    small = dict(profile="smoke", seed=0, device="cpu", progress=False, measure="bd", queries_per_sample=28,
                 train_size=256, soft_size=64, epochs=1)
    soft_only = run_method("db3kd", ingredients=("distance-soft-labels",), **small)
    rec = soft_only.record
    assert len(soft_only.transfer) == rec.transfer_set_size == 64
    assert bool(soft_only.transfer.targets[2].all()), "every row of a soft-only set has a soft label"
    assert rec.options["ingredients"] == ("distance-soft-labels",)
    assert rec.ingredients == {"distance-soft-labels": {"rows": 64, "holdout_rows": 0, "queries": rec.queries}}
    assert rec.queries > 64 and rec.extras["soft_labelled"] == 64

    true_only = run_method("db3kd", ingredients=("true-label-rows",), **small)
    rec = true_only.record
    assert rec.queries == 0 and rec.transfer_set_size == 256
    assert rec.loss == "ce" and rec.target_kind == "class-ids"
    assert rec.ingredients == {"true-label-rows": {"rows": 256, "holdout_rows": 0, "queries": 0}}
