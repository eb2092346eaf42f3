"""One pipeline for every method: the test split stays with the runner, methods never reach the teacher
cache, runs are deterministic, and the declarative configs do what the README promises."""
from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from labkit.core.errors import ConfigError, UnknownNameError
from labkit.core.losses import build_loss
from labkit.core.profiles import PROFILES
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import available_methods, get_method
from labkit.studies.bench import BENCH_ENTRIES, BenchEntry

from .conftest import needs_fmnist

LABKIT = Path(__file__).resolve().parents[1] / "labkit"
METHODS_DIR = LABKIT / "methods"
ENTRIES = {e.key: e for e in BENCH_ENTRIES}
#: the rows the spy test runs: one per method and options, each on the data set's default teacher and student (the
#: test split's path does not depend on them; a row's own teacher reaching the runner: tests/test_bench.py)
CODE_PATHS = [e.key for i, e in enumerate(BENCH_ENTRIES)
              if (e.method, e.options) not in {(f.method, f.options) for f in BENCH_ENTRIES[:i]}]
#: bench entry -> its smoke record (seed 0) from the one run the spy test makes of it
RECORDS: dict[str, dict[str, Any]] = {}
#: the rows the determinism test runs a second time: for each method and box access, its cheapest row (cost rank)
DETERMINISM_ROWS: list[str] = sorted(
    min((e for e in BENCH_ENTRIES if (e.method, e.access) == pair), key=lambda e: e.cost_rank).key
    for pair in {(e.method, e.access) for e in BENCH_ENTRIES})


def _all_method_names() -> list[str]:
    return available_methods()


# ------------------------------------------------------------------------------------------- test-split spy
def _spy_on_the_test_split(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[tuple[str, str]]:
    """Record ``("load", split)`` and the method's distill/after_training start and end, in order.

    Every labkit module's own ``load_dataset`` binding is replaced, so a method importing it directly is seen too.
    """
    import labkit.core.data

    events: list[tuple[str, str]] = []
    original = labkit.core.data.load_dataset

    def spy_load(name: str, split: str = "train", *args: Any, **kwargs: Any) -> Any:
        events.append(("load", split))
        return original(name, split, *args, **kwargs)

    for mod_name, mod in list(sys.modules.items()):
        if (mod_name == "labkit" or mod_name.startswith("labkit.")) and getattr(mod, "load_dataset", None) is original:
            monkeypatch.setattr(mod, "load_dataset", spy_load)

    def wrap(hook: str) -> None:
        inner = getattr(cls, hook)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            events.append((hook, "start"))
            out = inner(self, *args, **kwargs)
            events.append((hook, "end"))
            return out

        monkeypatch.setattr(cls, hook, wrapped)

    wrap("distill")
    wrap("after_training")
    return events


#: every row's student trains this many epochs here: the epoch loop, its selection and every method's code run as at
#: any other count, and the 29 spy runs plus the determinism re-runs take about 40 % less of CI's time
TEST_EPOCHS = 1


def _run_entry(entry: BenchEntry, **extra: Any) -> Any:
    """The row at the smoke profile with its options (held to the smoke profile's sizes by ``smoke_sized``), its
    student trained for ``TEST_EPOCHS``: no code path changes."""
    from labkit.studies.cost_check import smoke_sized
    from labkit.studies.runner import run_method

    options = {**smoke_sized(entry.method, entry.option_dict()), "epochs": TEST_EPOCHS}
    return run_method(entry.method, profile="smoke", seed=0, device="cpu", progress=False, **{**options, **extra})


@needs_fmnist
@pytest.mark.slow
@pytest.mark.parametrize("key", CODE_PATHS)
def test_no_method_sees_the_test_split_before_its_student_is_trained(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bench row, run once here (smoke, seed 0) with the spy on: the test split stays with the runner, and the
    record keeps the README's promises. The record is kept for the determinism test."""
    entry = ENTRIES[key]
    cls = get_method(entry.method)
    events = _spy_on_the_test_split(monkeypatch, cls)
    run = _run_entry(entry)
    RECORDS[key] = run.record.to_dict()
    assert ("distill", "end") in events and ("after_training", "end") in events, events
    done = events.index(("after_training", "end"))
    early = [i for i, e in enumerate(events) if e == ("load", "test") and i < done]
    assert not early, f"{key}: the test split was loaded before distill/after_training returned: {events}"
    assert ("load", "test") in events[done:], "the runner's evaluation should load the test split (spy broken?)"
    # the README's promises on the record: selection split, ingredients, one definition of the size
    rec = run.record
    if cls.data_access == "labeled":
        assert rec.selection == "validation split" and rec.holdout_size == 0
    else:
        assert rec.holdout_size > 0 and rec.selection != "validation split", (rec.selection, rec.holdout_size)
    assert rec.ingredients and rec.transfer_set_size == sum(i["rows"] for i in rec.ingredients.values())
    assert rec.transfer_set_size == run.transfer.size > 0
    assert sum(i["queries"] for i in rec.ingredients.values()) <= rec.queries
    valid = cls.config_class.INGREDIENTS
    if valid:
        assert set(rec.ingredients) <= set(valid), (set(rec.ingredients), set(valid))
    assert rec.loss and rec.target_kind and rec.best_epoch >= 1


@contextlib.contextmanager
def _toy_method(name: str, access: str, data_access: str, distill: Callable[..., TransferSet]) -> Iterator[type]:
    """A method registered as ``name`` for the block (the student's config), with ``distill`` as its distill."""
    from labkit.methods.base import METHODS, DistillationMethod, register_method
    from labkit.methods.kd import StudentConfig

    cls = register_method(type(name, (DistillationMethod,), {"name": name, "access": access, "data_access": data_access,
                                                              "config_class": StudentConfig, "distill": distill}))
    try:
        yield cls
    finally:
        METHODS.pop(name, None)


def _run_toy(name: str) -> Any:
    from labkit.studies.runner import run_method

    return run_method(name, dataset="toy2d-blobs-3", profile="smoke", device="cpu", progress=False)


def test_the_spy_catches_a_method_that_reads_the_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spy itself works: a toy method that loads the test split inside distill is caught."""
    import labkit.core.data

    def distill(self: Any, box: Any, data: Any, ctx: Any) -> TransferSet:
        test = labkit.core.data.load_dataset(ctx.info.name, "test")
        return TransferSet(test.x, (test.y,), "class-ids", build_loss("ce"), TrainRecipe(1, 64, 1e-3),
                           [Ingredient("labelled-data")])

    with _toy_method("spy-cheater", "none", "labeled", distill) as cheater:
        events = _spy_on_the_test_split(monkeypatch, cheater)
        _run_toy("spy-cheater")
    assert events.index(("load", "test")) < events.index(("distill", "end"))


# ------------------------------------------------------------------------------------------- no teacher cache
def _module_name(path: Path) -> str:
    rel = path.relative_to(LABKIT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` for every import statement of a labkit source file."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [a.name for a in node.names]))
    return out


def _source_of(module: str) -> Path | None:
    """The file of a labkit module (``None`` outside labkit)."""
    if module != "labkit" and not module.startswith("labkit."):
        return None
    rel = Path(*module.split("."))
    for candidate in (LABKIT.parent / rel.with_suffix(".py"), LABKIT.parent / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _labkit_closure(start: list[Path]) -> dict[str, str]:
    """Every labkit module reachable by imports from ``start`` (``labkit/__init__`` itself not followed),
    mapped to the module that imported it first."""
    seen: dict[str, str] = {}
    todo = [(_module_name(p), p) for p in start]
    while todo:
        name, path = todo.pop()
        for module, names in _imports(path):
            targets = [module] + [f"{module}.{n}" for n in names]  # "from .. import teachers" names a module
            for target in targets:
                src = _source_of(target)
                if src is None or target == "labkit" or target in seen:
                    continue
                seen[target] = name
                todo.append((target, src))
    return seen


def test_methods_never_import_the_teacher_cache_directly() -> None:
    files = sorted(METHODS_DIR.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        for module, names in _imports(path):
            assert module != "labkit.core.teachers", f"{path.name} imports {module}"
            assert "get_teacher" not in names and "teachers" not in names, f"{path.name} imports {names} from {module}"
            if module == "labkit":
                assert not {"runner", "run_method", "get_teacher", "teachers"} & set(names), path.name


def test_methods_never_reach_the_teacher_cache_through_other_labkit_modules() -> None:
    closure = _labkit_closure(sorted(METHODS_DIR.glob("*.py")))
    assert "labkit.core.transfer" in closure  # the walk follows relative imports
    for forbidden in ("labkit.core.teachers", "labkit.studies.runner"):
        assert forbidden not in closure, f"{forbidden} is imported (via {closure.get(forbidden)})"


def test_importing_every_method_module_loads_no_teacher_cache() -> None:
    """In a fresh interpreter, import labkit.methods.* without running labkit/__init__ (which imports the runner)."""
    code = f"""
import importlib, importlib.util, pkgutil, sys, types
pkg = types.ModuleType("labkit")
pkg.__path__ = [{str(LABKIT)!r}]
sys.modules["labkit"] = pkg
import labkit.methods
names = [m.name for m in pkgutil.iter_modules(labkit.methods.__path__)]
for name in names:
    importlib.import_module("labkit.methods." + name)
loaded = sorted(m for m in sys.modules if m.startswith("labkit"))
print(",".join(names))
print(",".join(loaded))
bad = [m for m in ("labkit.core.teachers", "labkit.studies.runner") if m in sys.modules]
sys.exit("loaded: " + ", ".join(bad) if bad else 0)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout
    names = res.stdout.splitlines()[0].split(",")
    assert {"base", "kd", "db3kd", "zskd", "zsdb3kd", "fsbbt", "mekd"} <= set(names)


# ------------------------------------------------------------------------------------------- determinism
_TIMING_KEYS = ("wall_s", "machine", "seconds", "time_s", "elapsed")


def _without_timing(value: Any) -> Any:
    """A record dict without wall-clock fields (at any depth)."""
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items()
                if not any(t in str(k) for t in _TIMING_KEYS) and not str(k).endswith("_s")}
    if isinstance(value, (list, tuple)):
        return [_without_timing(v) for v in value]
    return value


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one run" for k in set(a) ^ set(b)]
        for k in set(a) & set(b):
            out += _differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_without_timing_drops_only_clock_fields() -> None:
    rec = {"wall_s": 1.0, "machine": "x", "student_acc": 0.5, "extras": {"gan_seconds": 3, "rows": 4}}
    assert _without_timing(rec) == {"student_acc": 0.5, "extras": {"rows": 4}}
    assert _differences({"a": [1.0, 2.0]}, {"a": [1.0, 2.0000001]}) == [".a[1]: 2.0 != 2.0000001"]


def test_control_the_comparison_catches_a_method_that_is_not_deterministic() -> None:
    """The determinism check itself works: a toy method whose noise is seeded from the clock gives two records
    that differ (on toy data, so this costs two small runs)."""
    import time

    def distill(self: Any, box: Any, data: Any, ctx: Any) -> TransferSet:
        gen = torch.Generator().manual_seed(time.perf_counter_ns())
        x = torch.rand((60, *ctx.info.image_shape), generator=gen)
        p = box(x)
        return TransferSet(x[:50], (p[:50],), "probabilities", build_loss("soft-ce"), self.config(ctx).recipe(),
                           [Ingredient("noise", phases=("default",))], holdout=(x[50:], p[50:].argmax(1)),
                           extras={"first_pixel": float(x[0].flatten()[0])})

    with _toy_method("clock-seeded", "score", "none", distill):
        a, b = (_without_timing(_run_toy("clock-seeded").record.to_dict()) for _ in range(2))
    assert any(d.startswith(".extras.first_pixel") for d in _differences(a, b)), _differences(a, b)


def test_every_method_and_box_access_has_a_determinism_row() -> None:
    chosen = {(ENTRIES[k].method, ENTRIES[k].access) for k in DETERMINISM_ROWS}
    assert chosen == {(e.method, e.access) for e in BENCH_ENTRIES} and len(chosen) == len(DETERMINISM_ROWS)
    assert len(DETERMINISM_ROWS) < len(ENTRIES)


@needs_fmnist
@pytest.mark.slow
@pytest.mark.parametrize("key", DETERMINISM_ROWS)
def test_the_same_seed_gives_the_same_record(key: str) -> None:
    """A second run of a bench row gives a record equal to the first, clock fields aside.

    The spy test above runs every row once and keeps its record. This test runs again one row per method and box
    access (MEKD's soft and hard answers are different code; DB3KD without soft labels asks no teacher), the
    cheapest by cost rank, and compares, instead of running all 25 rows a second time. Everything the rows share
    (the runner, data loading, the box, ``train_student``, evaluation) is in every re-run, and each method's own
    code (its ``distill``, synthesizer and loss, per access) in its row's; the cheapest row is most often the
    method's combined row, so most ingredients run again too. Run alone (``-k``), the test makes both runs itself.
    """
    first = _without_timing(RECORDS.get(key) or _run_entry(ENTRIES[key]).record.to_dict())
    second = _without_timing(_run_entry(ENTRIES[key]).record.to_dict())
    assert not _differences(first, second), f"{key} is not deterministic: {_differences(first, second)[:10]}"


# ------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", _all_method_names())
def test_every_config_has_a_table_per_profile_and_builds_in_each(name: str) -> None:
    cfg_cls = get_method(name).config_class
    assert set(cfg_cls.PROFILES) == set(PROFILES), cfg_cls.__name__  # smoke, laptop, gpu and paper
    for profile in PROFILES:
        cfg = cfg_cls.for_profile(profile, "fashion-mnist")
        assert dataclasses.is_dataclass(cfg)
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.epochs = 99  # type: ignore[misc]
    assert cfg_cls.for_profile("smoke", "fashion-mnist", epochs=7).epochs == 7


@pytest.mark.parametrize("name", _all_method_names())
def test_unknown_option_lists_the_valid_keys(name: str) -> None:
    cls = get_method(name)
    with pytest.raises(UnknownNameError) as err:
        cls(no_such_option=1)
    for field in cls.config_class.field_names():
        assert field in str(err.value)
    with pytest.raises(UnknownNameError, match="epochs"):
        cls.config_class.for_profile("smoke", epochz=3)


@pytest.mark.parametrize("name", _all_method_names())
def test_every_config_field_has_a_cli_flag_with_help(name: str) -> None:
    cfg_cls = get_method(name).config_class
    parser = argparse.ArgumentParser()
    added = get_method(name).add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(cfg_cls):
        assert f.metadata.get("help"), f"{cfg_cls.__name__}.{f.name} has no help text"
        if not f.metadata.get("cli", True):
            continue
        assert f.name in added, f"{cfg_cls.__name__}.{f.name} has no flag"
        action = actions[f.name]
        assert action.help and action.default is None
        assert "--" + f.name.replace("_", "-") in action.option_strings or f.metadata.get("flag")


def test_run_kd_help_shows_generated_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.studies.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "kd", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--tau", "--alpha", "--epochs", "--batch-size", "--lr"):
        assert flag in out, flag
    assert "temperature" in out


def test_python_m_labkit_run_kd_help_mentions_tau() -> None:
    res = subprocess.run([sys.executable, "-m", "labkit", "run", "kd", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--tau" in res.stdout


WITH_INGREDIENTS = ("db3kd", "zskd", "zsdb3kd", "fsbbt", "mekd", "kd-edge")


@pytest.mark.parametrize("name", WITH_INGREDIENTS)
def test_ingredients_are_validated(name: str) -> None:
    cfg_cls = get_method(name).config_class
    valid = list(cfg_cls.INGREDIENTS)
    cfg = cfg_cls.for_profile("smoke", "fashion-mnist")
    assert set(cfg.ingredients) <= set(valid) and cfg.ingredients  # type: ignore[attr-defined]
    assert cfg.uses(cfg.ingredients[0])  # type: ignore[attr-defined]
    with pytest.raises(UnknownNameError) as err:
        cfg_cls.for_profile("smoke", "fashion-mnist", ingredients=("no-such-thing",))
    assert all(v in str(err.value) for v in valid)
    with pytest.raises(ConfigError, match="at least one ingredient"):
        cfg_cls.for_profile("smoke", "fashion-mnist", ingredients=())
    with pytest.raises(UnknownNameError):
        cfg.uses("no-such-thing")
    # names are normalised: case and spaces
    assert cfg_cls.for_profile("smoke", "fashion-mnist", ingredients=(" " + valid[0].upper(),)).ingredients == \
        (valid[0],)  # type: ignore[attr-defined]


def test_fixed_ingredient_names() -> None:
    expected = {
        "db3kd": {"distance-soft-labels", "true-label-rows"},
        "zskd": {"impressions", "relabelled-copies", "authors-augmentation"},
        "zsdb3kd": {"pseudo-samples", "pseudo-sample-paths", "noise-bank", "mixup"},
        "fsbbt": {"few-shot", "mixup", "cvae"},
        "mekd": {"generated", "edge-images", "stream"},
        "kd-edge": {"edge-images"},
    }
    for name, names in expected.items():
        assert set(get_method(name).config_class.INGREDIENTS) == names, name


# ------------------------------------------------------------------------------------------- transfer set
def _transfer(**kw: Any) -> TransferSet:
    x = torch.rand(10, 2)
    args: dict[str, Any] = dict(x=x, targets=(torch.zeros(10, dtype=torch.long),), target_kind="class-ids",
                                loss=build_loss("ce"), recipe=TrainRecipe(1, 4, 1e-3),
                                ingredients=[Ingredient("a", phases=("p",)), Ingredient("b")])
    args.update(kw)
    return TransferSet(**args)


def test_transfer_set_size_counts_distinct_rows_and_excludes_the_holdout() -> None:
    t = _transfer(source=torch.tensor([0] * 6 + [1] * 4), holdout=(torch.rand(3, 2), torch.zeros(3).long()))
    assert [i.rows for i in t.ingredients] == [6, 4] and t.size == 10 and t.holdout_size == 3
    repeated = _transfer(ingredients=[Ingredient("a", rows=5)])  # 10 rows, 5 distinct ones repeated twice
    assert repeated.size == 5 and len(repeated) == 10
    t.count_queries({"p": 7, "other": 3})
    assert [i.queries for i in t.ingredients] == [7, 0]
    assert t.ingredients[0].as_record() == {"rows": 6, "holdout_rows": 0, "queries": 7}


def test_transfer_set_refuses_what_the_runner_cannot_train() -> None:
    from torch import nn

    with pytest.raises(ConfigError, match="empty"):
        _transfer(x=torch.rand(0, 2), targets=(torch.zeros(0).long(),))
    with pytest.raises(ConfigError, match="target kind"):
        _transfer(target_kind="vibes")
    with pytest.raises(ConfigError, match="rows"):
        _transfer(targets=(torch.zeros(9).long(),))
    with pytest.raises(UnknownNameError, match="registered loss"):
        _transfer(loss=nn.MSELoss())
    with pytest.raises(ConfigError, match="repeat"):
        _transfer(ingredients=[Ingredient("a"), Ingredient("a")])
    with pytest.raises(ConfigError, match="claimed by two"):
        _transfer(ingredients=[Ingredient("a", phases=("p",)), Ingredient("b", phases=("p",))])
    with pytest.raises(ConfigError, match="not listed"):
        _transfer(source=torch.tensor([0] * 5 + [2] * 5))
    with pytest.raises(ConfigError, match="holdout is empty"):
        _transfer(holdout=(torch.rand(0, 2), torch.zeros(0).long()))


@pytest.mark.parametrize("name", WITH_INGREDIENTS)
def test_each_ingredient_alone_is_accepted_or_refused_clearly(name: str) -> None:
    cfg_cls = get_method(name).config_class
    for ingredient in cfg_cls.INGREDIENTS:
        try:
            cfg = cfg_cls.for_profile("smoke", "fashion-mnist", ingredients=(ingredient,))
        except ConfigError as exc:  # a combination that cannot run must say why
            assert str(exc)
        else:
            assert cfg.uses(ingredient) and cfg.ingredients == (ingredient,)  # type: ignore[attr-defined]
