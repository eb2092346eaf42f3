"""Every registered training loss pinned by a stored value on fixed, seeded inputs (torchdistill style).

The stored values live in ``data/fixtures/loss_golden.json``. A loss whose number changes fails here;
if the change is intended, regenerate the file and say why in the commit::

    python tests/test_loss_golden.py --regenerate

Inputs come from seeded ``torch.Generator`` draws; each case also stores a checksum of its inputs so a
failure says whether the loss or the inputs moved.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import labkit.methods.db3kd  # noqa: F401  (registers "db3kd-distance")
import labkit.methods.mekd  # noqa: F401  (registers "mekd-alignment")
from labkit.core.losses import LOSSES

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "fixtures" / "loss_golden.json"
N, C = 6, 5  # batch rows, classes
TOL = 1e-6


def _inputs(seed: int) -> dict[str, torch.Tensor]:
    """Student logits, teacher logits and probabilities, labels and a soft-row mask, all from one seed."""
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(N, C, generator=g) * 2
    teacher = torch.randn(N, C, generator=g) * 2
    labels = torch.randint(0, C, (N,), generator=g)
    has_soft = torch.arange(N) % 3 != 0
    return {"student": student, "teacher": teacher, "probs": torch.softmax(teacher, 1), "labels": labels,
            "has_soft": has_soft}


def _generator() -> nn.Module:
    """A small seeded MEKD generator for 2-D points (C responses -> R^2)."""
    from labkit.synthesis.generators import VectorGenerator, freeze

    torch.manual_seed(7)
    gen = VectorGenerator(C, 2, hidden=16)
    with torch.no_grad():  # non-trivial BatchNorm running statistics: the frozen generator runs in eval mode
        gen.train()(torch.randn(64, C, generator=torch.Generator().manual_seed(8)))
    return freeze(gen)


Builder = Callable[[dict[str, torch.Tensor]], tuple[nn.Module, tuple[torch.Tensor, ...]]]


def _cases() -> dict[str, tuple[str, int, Builder]]:
    """case id -> (registered loss name, input seed, builder of (loss module, forward arguments))."""
    def mekd(response: str, **kw: Any) -> Builder:
        def build(i: dict[str, torch.Tensor]) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
            target = i["probs"] if response == "soft" else i["teacher"].argmax(1)
            return LOSSES["mekd-alignment"](_generator(), C, response=response, **kw), (i["student"], target)
        return build

    return {
        "ce": ("ce", 0, lambda i: (LOSSES["ce"](), (i["student"], i["labels"]))),
        "soft-ce": ("soft-ce", 1, lambda i: (LOSSES["soft-ce"](), (i["student"], i["probs"]))),
        "kd-tau4": ("kd", 2, lambda i: (LOSSES["kd"](tau=4.0), (i["student"], i["teacher"]))),
        "kd-tau2-alpha0.3": ("kd", 3, lambda i: (LOSSES["kd"](tau=2.0, alpha=0.3),
                                                 (i["student"], i["teacher"], i["labels"]))),
        "kd-from-probabilities-tau4-alpha0.1": ("kd", 4, lambda i: (
            LOSSES["kd"](tau=4.0, alpha=0.1, from_probabilities=True), (i["student"], i["probs"], i["labels"]))),
        "soft-kd-tau1": ("soft-kd", 5, lambda i: (LOSSES["soft-kd"](tau=1.0), (i["student"], i["probs"]))),
        "soft-kd-tau3-alpha0.5": ("soft-kd", 6, lambda i: (LOSSES["soft-kd"](tau=3.0, alpha=0.5),
                                                           (i["student"], i["probs"], i["labels"]))),
        "db3kd-distance-tau2-alpha0.3": ("db3kd-distance", 7, lambda i: (
            LOSSES["db3kd-distance"](tau=2.0, alpha=0.3), (i["student"], i["probs"], i["labels"], i["has_soft"]))),
        "mekd-alignment-soft": ("mekd-alignment", 8, mekd("soft", tau=5.0, tau_g=5.0)),
        "mekd-alignment-hard-wf2": ("mekd-alignment", 9, mekd("hard", tau=3.0, tau_g=2.0, w_f=2.0, w_kl=0.5)),
    }


def _evaluate(case_id: str) -> tuple[str, float, float]:
    """(loss name, loss value, checksum of the inputs) of one case."""
    name, seed, build = _cases()[case_id]
    inputs = _inputs(seed)
    loss, args = build(inputs)
    with torch.no_grad():
        value = loss(*args)
    assert value.dim() == 0, f"{case_id}: a loss must return a scalar"
    checksum = float(sum(float(a.double().sum()) for a in args))
    return name, float(value), checksum


def _load() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("case_id", sorted(_cases()))
def test_loss_matches_its_golden_value(case_id: str) -> None:
    stored = _load()["cases"][case_id]
    name, value, checksum = _evaluate(case_id)
    assert name == stored["loss"]
    assert checksum == pytest.approx(stored["inputs_checksum"], rel=TOL, abs=TOL), \
        f"{case_id}: the seeded inputs changed (torch RNG?), not necessarily the loss"
    assert value == pytest.approx(stored["value"], rel=TOL, abs=TOL), f"{case_id}: the loss value changed"


def test_every_registered_loss_has_a_golden_case() -> None:
    covered = {stored["loss"] for stored in _load()["cases"].values()}
    assert set(LOSSES) <= covered, f"registered losses without a golden case: {sorted(set(LOSSES) - covered)}"
    assert set(_cases()) == set(_load()["cases"]), "the fixture and the case list differ: regenerate"


def test_a_changed_loss_would_fail() -> None:
    # the tolerance is tight enough to see a small change in a hyper-parameter
    stored = _load()["cases"]["kd-tau4"]["value"]
    inputs = _inputs(2)
    moved = float(LOSSES["kd"](tau=4.01)(inputs["student"], inputs["teacher"]))
    assert moved != pytest.approx(stored, rel=TOL, abs=TOL)


def regenerate() -> None:
    """Recompute every case and rewrite the fixture."""
    cases = {}
    for case_id in sorted(_cases()):
        name, value, checksum = _evaluate(case_id)
        cases[case_id] = {"loss": name, "value": value, "inputs_checksum": checksum}
    payload = {
        "_note": "Golden values of every registered loss on seeded inputs (float32 forward). Regenerate with "
                 "'python tests/test_loss_golden.py --regenerate' ONLY when a loss change is intended.",
        "torch": torch.__version__,
        "cases": cases,
    }
    FIXTURE.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit("usage: python tests/test_loss_golden.py --regenerate")
    regenerate()
