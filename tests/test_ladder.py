"""The truthful ladder: paper variants switch every lab addition off, the baselines isolate one ingredient each,
ZSKD's β both ways, MEKD's authors' information term, the noise-kd floor, one-hot kd-edge, and the DB3KD rows."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit.core.blackbox import BlackBox
from labkit.core.data import DatasetInfo, dataset_info, load_dataset
from labkit.core.errors import AccessDenied, UnknownNameError
from labkit.core.profiles import get_profile
from labkit.core.train import split_holdout
from labkit.methods.base import MethodData, RunContext, get_method
from labkit.methods.db3kd import DB3KD, DB3KDConfig
from labkit.methods.mekd import MEKDConfig
from labkit.methods.noise_kd import NoiseKD, NoiseKDConfig
from labkit.methods.zsdb3kd import ZSDB3KDConfig
from labkit.methods.zskd import ZSKDConfig, class_similarity, dirichlet_concentration, impression_transfer_set
from labkit.synthesis.deprivatisation import DEFAULT_INFO_WEIGHT, train_generator

INFO = dataset_info("fashion-mnist")


def _ctx(info: DatasetInfo = INFO, arch: str = "lenet5-half") -> RunContext:
    return RunContext(get_profile("smoke"), 0, torch.device("cpu"), arch, info, progress=False)


# ----------------------------------------------------------------------------------------------- variants
@pytest.mark.parametrize("profile", ["smoke", "laptop", "paper"])
def test_paper_variants_switch_every_lab_addition_off(profile: str) -> None:
    z = ZSDB3KDConfig.for_profile(profile, variant="paper")
    assert z.ingredients == ("pseudo-samples",) and z.noise == "authors" and z.variant == "paper"
    k = ZSKDConfig.for_profile(profile, variant="paper")
    assert k.ingredients == ("impressions",) and k.beta_mode == "paper" and k.student_tau is None
    m = MEKDConfig.for_profile(profile, variant="paper")
    assert m.ingredients == ("generated",) and m.deprivatisation == "paper-text" and m.stream
    code, fixed = (MEKDConfig.for_profile(profile, variant=v) for v in ("authors-code", "fixed-set"))
    assert code.deprivatisation == "authors-code" and code.stream and fixed.ingredients == ("generated",)
    assert fixed.deprivatisation == "paper-text" and not fixed.stream
    d = DB3KDConfig.for_profile(profile, variant="paper")
    assert d.ingredients == ("distance-soft-labels",) and d.soft_size is None
    assert d.train_size == DB3KDConfig.PAPER_VARIANT_ROWS[profile]


def test_the_paper_profile_is_the_paper_variant_and_overrides_win() -> None:
    for cfg_cls in (ZSDB3KDConfig, ZSKDConfig, MEKDConfig, DB3KDConfig):
        assert cfg_cls.for_profile("paper").variant == "paper", cfg_cls
        assert cfg_cls.for_profile("laptop").variant == "lab", cfg_cls
    assert ZSDB3KDConfig.for_profile("laptop").noise == "dead-leaves"  # the lab's profile keeps its additions
    # an explicit option beats the variant's value (the zsdb3kd+dead-leaves row is built this way)
    assert ZSDB3KDConfig.for_profile("laptop", variant="paper", noise="dead-leaves").noise == "dead-leaves"
    with pytest.raises(UnknownNameError, match="variant"):
        ZSDB3KDConfig.for_profile("laptop", variant="papers")


# ----------------------------------------------------------------------------------------------- ZSKD
def test_zskd_beta_cancels_in_the_authors_order_only() -> None:
    torch.manual_seed(0)
    sim = class_similarity(torch.randn(10, 16))
    classes = torch.tensor([3, 3, 7, 7])
    betas = torch.tensor([1.0, 0.1, 1.0, 0.1])
    paper = dirichlet_concentration(sim, classes, betas, "paper")
    authors = dirichlet_concentration(sim, classes, betas, "authors")
    assert torch.allclose(paper[1], 0.1 * paper[0]) and not torch.allclose(paper[0], paper[1])
    assert torch.allclose(authors[0], authors[1], atol=1e-6) and torch.allclose(authors[2], authors[3], atol=1e-6)
    assert torch.allclose(authors[0], paper[0], atol=1e-6)  # β cancels: every impression is effectively β = 1
    with pytest.raises(UnknownNameError):
        dirichlet_concentration(sim, classes, betas, "other")


def test_zskd_student_tau_re_tempers_the_teachers_answers_exactly() -> None:
    logits = torch.randn(40, 10) * 5
    tau = 20.0
    p20 = torch.softmax(logits / tau, dim=1)
    cfg = ZSKDConfig.for_profile("smoke", student_tau=4.0, impressions=40, ingredients=("impressions",))
    box = BlackBox(nn.Linear(784, 10), access="white", input_shape=(1, 28, 28), num_classes=10)
    ts = impression_transfer_set(box, torch.rand(40, 1, 28, 28), p20, cfg)
    keep, _ = split_holdout(40, cfg.holdout_fraction, 0, torch.device("cpu"))
    assert torch.allclose(ts.targets[0], torch.softmax(logits[keep] / 4.0, dim=1), atol=1e-5)
    assert ts.loss.tau == 4.0
    assert box.queries == 0  # re-tempering asks the teacher nothing


# ----------------------------------------------------------------------------------------------- noise-kd
class ThreeBands(nn.Module):
    """A 3-class teacher on 2-D points (the first coordinate's third), counting what it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        v = x.reshape(x.shape[0], -1)[:, :1]
        return -((v - torch.tensor([[0.2, 0.5, 0.8]])) ** 2)


def test_noise_kd_sees_only_class_ids_and_counts_every_draw() -> None:
    model = ThreeBands()
    answers: list[torch.Tensor] = []
    box = BlackBox(model, access="decision", input_shape=(2,), num_classes=3)
    real_call = box.__call__

    class Spy:
        def __getattr__(self, name):
            return getattr(box, name)

        def __call__(self, x, **kw):
            out = real_call(x, **kw)
            answers.append(out)
            return out

    info = DatasetInfo("toy-bands", ("a", "b", "c"), (2,))
    ctx = _ctx(info, "mlp-small")
    method = NoiseKD(noise="authors", draws=1000, per_class=50, init_batch=256, epochs=1, batch_size=32)
    ts = method.distill(Spy(), MethodData(info), ctx)  # type: ignore[arg-type]
    assert answers and all(a.dtype == torch.int64 and a.dim() == 1 for a in answers)
    assert box.queries == model.seen == 1000 == box.queries_by_phase["noise bank"]
    assert ts.loss_name == "ce" and ts.target_kind == "class-ids" and ts.ingredient_names() == ["noise-bank"]
    assert len(ts) == 3 * 50 and ts.holdout is not None and ts.selection.startswith("teacher-labelled holdout")
    assert sum(ts.extras["hits_per_class"]) == ts.extras["draws"] == 1000
    with pytest.raises(AccessDenied):
        method.distill(BlackBox(model, access="score", input_shape=(2,), num_classes=3), MethodData(info), ctx)


def test_noise_kd_sizes_follow_zsdb3kds_bank() -> None:
    for profile in ("smoke", "laptop", "paper"):
        n, z = NoiseKDConfig.for_profile(profile), ZSDB3KDConfig.for_profile(profile)
        assert (n.draws, n.per_class, n.noise, n.epochs, n.lr) == (z.min_init_draws, z.bank_per_class, z.noise,
                                                                   z.epochs, z.lr)


# ----------------------------------------------------------------------------------------------- MEKD / kd-edge
def test_paper_information_term_queries_every_generated_image(teacher) -> None:
    """The paper variant's term (weight 0.5) asks the box about every G(z) of every step, in hard mode too."""
    assert DEFAULT_INFO_WEIGHT == {"class-head": 0.5, "teacher-imitation": 1.0, "authors-code": 0.5, "paper-text": 0.5}
    box = BlackBox(teacher.model, access="decision", input_shape=(1, 28, 28), num_classes=10)
    cfg = MEKDConfig.for_profile("smoke", variant="paper", gan_epochs=1, g_width=8, d_width=4, gan_batch=32)
    edge = load_dataset("fashion-mnist", "train", limit=96, seed=0).x
    dep = train_generator(box, edge, 10, cfg.gan_settings(), response="hard", info=INFO, device=torch.device("cpu"),
                          seed=0, progress=False)
    assert box.queries == box.queries_by_phase["deprivatisation: G(z)"] == 96  # every G(z) of every step, once
    assert len(dep.history) == 1 and "teacher_confidence" not in dep.history[0]
    with pytest.raises(UnknownNameError, match="deprivatisation"):
        MEKDConfig.for_profile("smoke", deprivatisation="imitate")


def test_kd_edge_hard_uses_a_decision_box_and_class_ids(teacher) -> None:
    cls = get_method("kd-edge")
    hard = cls(response="hard")
    assert hard.access == "decision" and hard.label == "kd-edge-hard" and cls().label == "kd-edge"
    box = BlackBox(teacher.model, access="decision", input_shape=(1, 28, 28), num_classes=10)
    data = load_dataset("fashion-mnist", "train", limit=400, seed=0)
    ts = hard.distill(box, MethodData(INFO, unlabeled=data.x), _ctx())
    assert ts.target_kind == "class-ids" and ts.loss_name == "ce" and ts.targets[0].dtype == torch.int64
    assert box.queries == 40 == ts.size + ts.holdout_size
    score = BlackBox(teacher.model, access="score", input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(AccessDenied):
        hard.distill(score, MethodData(INFO, unlabeled=data.x), _ctx())


# ----------------------------------------------------------------------------------------------- DB3KD
def test_db3kd_true_label_rows_alone_never_build_a_box() -> None:
    assert DB3KD(ingredients=("true-label-rows",)).access == "none"
    assert DB3KD(ingredients="true-label-rows").access == "none"
    assert DB3KD().access == DB3KD(ingredients=("distance-soft-labels",)).access == "decision"
    train = load_dataset("fashion-mnist", "train", limit=300, seed=0)
    val = load_dataset("fashion-mnist", "val", limit=100, seed=0)
    method = DB3KD(ingredients=("true-label-rows",), train_size=200)
    ts = method.distill(None, MethodData(INFO, train=train, val=val), _ctx())
    assert ts.size == 200 and ts.loss_name == "ce" and ts.selection == "validation split"


@pytest.mark.slow
def test_run_zsdb3kd_variant_paper_writes_the_papers_ingredients_alone(fmnist_available, tmp_path) -> None:
    """`python -m labkit run zsdb3kd --variant paper` (smoke sizes): a record whose ingredients are the paper's."""
    import json

    from labkit.studies.cli import main

    out = tmp_path / "zsdb3kd.json"
    assert main(["run", "zsdb3kd", "--variant", "paper", "--profile", "smoke", "--no-progress", "--device", "cpu",
                 "--out", str(out)]) == 0
    (rec,) = json.loads(out.read_text())
    assert rec["options"]["variant"] == "paper" and list(rec["ingredients"]) == ["pseudo-samples"]
    assert rec["extras"]["config"]["noise"] == "authors" and "noise bank" not in rec["queries_by_phase"]
    assert rec["ingredients"]["pseudo-samples"]["rows"] == rec["transfer_set_size"]
