"""The base classes do what they declare: every ``option(choices=...)`` is enforced (not only by argparse), the
student-recipe part builds every method's ``TrainRecipe`` and checks itself, one access guard in
``DistillationMethod`` refuses a box at the wrong level, and ``@register_method`` is the only registry."""
from __future__ import annotations

import dataclasses
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import labkit.methods
from labkit.core.blackbox import ACCESS_LEVELS, BlackBox
from labkit.core.config import MethodConfig, StudentRecipeConfig, option
from labkit.core.data import DatasetInfo
from labkit.core.errors import AccessDenied, ConfigError, UnknownChoiceError, UnknownNameError
from labkit.core.losses import build_loss
from labkit.core.profiles import get_profile
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import METHODS, DistillationMethod, MethodData, RunContext, available_methods, get_method

INFO = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
CTX = RunContext(get_profile("smoke"), 0, torch.device("cpu"), "mlp-small", INFO, progress=False)


def _choice_fields() -> list[tuple[str, str]]:
    """``(method, field)`` for every config field declared with ``choices``."""
    out = []
    for name in available_methods():
        for f in dataclasses.fields(get_method(name).config_class):
            if f.metadata.get("choices"):
                out.append((name, f.name))
    return out


# ------------------------------------------------------------------------------------------- choices
def test_the_configs_declare_choices() -> None:
    fields = {field for _, field in _choice_fields()}
    assert {"measure", "noise", "response", "deprivatisation", "info_mode", "beta_mode", "parametrisation",
            "variant"} <= fields, fields


@pytest.mark.parametrize(("name", "field"), _choice_fields())
def test_every_declared_choice_is_enforced_and_every_choice_is_accepted(name: str, field: str) -> None:
    cfg_cls = get_method(name).config_class
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(cfg_cls)}[field]
    with pytest.raises(UnknownNameError) as err:
        cfg_cls.for_profile("smoke", "fashion-mnist", **{field: "no-such-choice"})
    if field != "variant":  # for_profile refuses an unknown variant before the config exists
        assert isinstance(err.value, UnknownChoiceError) and isinstance(err.value, ConfigError)
    message = str(err.value)
    assert field in message and "'no-such-choice'" in message and "--" + field.replace("_", "-") in message
    assert all(str(c) in message for c in choices), message
    # from Python too, not only through for_profile or argparse: check() refuses a replaced field
    cfg = cfg_cls.for_profile("smoke", "fashion-mnist")
    with pytest.raises(UnknownNameError, match=field):
        dataclasses.replace(cfg, **{field: "no-such-choice"}).check()
    for choice in choices:  # control: every declared choice builds
        assert getattr(cfg_cls.for_profile("smoke", "fashion-mnist", **{field: choice}), field) == choice


@dataclass(frozen=True)
class _Toy(MethodConfig):
    PROFILES = {"smoke": {}, "laptop": {}, "paper": {}}
    TITLE = "toy option"

    mode: str | None = option(None, choices=("a", "b"), help="an optional choice")
    modes: tuple[str, ...] = option(("a",), choices=("a", "b"), help="a sequence of choices")


def test_choices_of_an_optional_and_a_sequence_field() -> None:
    assert _Toy.for_profile("smoke").mode is None  # None is the default, not a choice
    assert _Toy.for_profile("smoke", mode="b", modes=("a", "b")).modes == ("a", "b")
    with pytest.raises(UnknownNameError, match="toy modes 'c'"):
        _Toy.for_profile("smoke", modes=("a", "c"))
    with pytest.raises(UnknownNameError, match="toy mode 'c'"):
        _Toy.for_profile("smoke", mode="c")


# ------------------------------------------------------------------------------------------- the student recipe
@pytest.mark.parametrize("name", available_methods())
def test_every_config_has_the_student_recipe_and_checks_it(name: str) -> None:
    cfg_cls = get_method(name).config_class
    assert issubclass(cfg_cls, StudentRecipeConfig)
    cfg = cfg_cls.for_profile("smoke", "fashion-mnist")
    recipe = cfg.recipe(desc="x", seed_offset=3)
    assert isinstance(recipe, TrainRecipe)
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.desc, recipe.seed_offset) == (
        cfg.epochs, cfg.batch_size, cfg.lr, "x", 3)
    for bad in ({"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}):
        with pytest.raises(ConfigError, match="the student needs epochs >= 1, batch_size >= 1 and lr > 0"):
            cfg_cls.for_profile("smoke", "fashion-mnist", **bad)


def test_a_config_without_the_recipe_part_needs_no_epochs() -> None:
    """Control: the base ``check`` no longer knows the names epochs, batch_size and lr."""
    assert not hasattr(_Toy.for_profile("smoke"), "epochs")


def test_a_subclass_may_redeclare_a_recipe_field_with_a_default() -> None:
    zskd = get_method("zskd").config_class
    assert [f.name for f in dataclasses.fields(zskd)][:3] == ["epochs", "batch_size", "lr"]
    assert zskd.for_profile("smoke").lr == 5e-3 and zskd.for_profile("laptop").lr == 1e-2


# ------------------------------------------------------------------------------------------- the access guard
def _box(access: str) -> BlackBox:
    return BlackBox(nn.Linear(2, 3), access=access, input_shape=(2,), num_classes=3)


def _instances() -> list[tuple[str, dict[str, Any]]]:
    """Every registered method that asks the teacher, at its default options, and MEKD/kd-edge with hard answers."""
    out = [(n, {}) for n in available_methods() if get_method(n).access != "none"]
    return out + [("mekd", {"response": "hard"}), ("kd-edge", {"response": "hard"})]


@pytest.mark.parametrize(("name", "options"), _instances())
def test_the_access_guard_refuses_every_other_box_before_the_method_runs(name: str, options: dict[str, Any]) -> None:
    method = get_method(name)(**options)
    for access in [a for a in ACCESS_LEVELS if a != method.access]:
        box = _box(access)
        with pytest.raises(AccessDenied, match=f"needs a '{method.access}' box .*given a '{access}' box"):
            method.distill(box, MethodData(INFO), CTX)
        assert box.queries == 0
    with pytest.raises(AccessDenied, match="no teacher at all"):
        method.distill(None, MethodData(INFO), CTX)
    method.check_box(_box(method.access))  # control: the box at its own level passes


def test_the_guard_wraps_a_new_methods_distill_and_follows_a_per_instance_access() -> None:
    """A method that writes no guard of its own is guarded; ``access`` set on the instance is honoured."""
    calls: list[str] = []

    class Probe(DistillationMethod[StudentRecipeConfig]):
        name = "probe"
        access = "score"
        data_access = "none"
        config_class = StudentRecipeConfig

        def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
            calls.append(box.access if box is not None else "none")
            return TransferSet(torch.rand(4, 2), (torch.zeros(4, dtype=torch.long),), "class-ids",
                               build_loss("ce"), TrainRecipe(1, 2, 1e-3), [Ingredient("x")])

    probe = Probe()
    with pytest.raises(AccessDenied, match="probe needs a 'score' box"):
        probe.distill(_box("decision"), MethodData(INFO), CTX)
    assert calls == []
    probe.distill(_box("score"), MethodData(INFO), CTX)
    probe.access = "decision"  # as MEKD's response option does
    probe.distill(_box("decision"), MethodData(INFO), CTX)
    probe.access = "none"  # a method without a teacher takes what it is given
    probe.distill(None, MethodData(INFO), CTX)
    assert calls == ["score", "decision", "none"]


# ------------------------------------------------------------------------------------------- the registry
def test_importing_labkit_methods_registers_every_method_module() -> None:
    modules = {m.name for m in pkgutil.iter_modules(labkit.methods.__path__)} - {"base"}
    assert modules == set(labkit.methods.__all__), "labkit/methods/__init__.py must import every method module"
    modules -= {"work_plans"}  # the methods' work plans (the cost model's counts), not a method
    registered = {cls.__module__.rsplit(".", 1)[-1] for cls in METHODS.values() if cls.__module__.startswith(
        "labkit.methods.")}
    assert registered == modules, registered
    assert {"student", "kd", "db3kd", "zskd", "zsdb3kd", "fsbbt", "mekd", "kd-edge", "noise-kd",
            "ideal"} <= set(available_methods())


def test_a_fresh_interpreter_finds_every_method_by_name_through_the_base_module() -> None:
    code = ("from labkit.methods.base import available_methods, get_method\n"
            "print(','.join(available_methods()), get_method('Noise_KD').name)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    names, noise = res.stdout.split()
    assert "mekd" in names.split(",") and "kd-edge" in names.split(",") and noise == "noise-kd"


def test_an_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="Unknown method 'nosuch'") as err:
        get_method("nosuch")
    assert all(name in str(err.value) for name in available_methods())
