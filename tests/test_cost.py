"""The cost model (labkit.studies.cost): every method counts its work, estimates match fresh runs, the gpu profile is
CUDA's default and fits a T4, and a run over MAX_MINUTES refuses with its way out."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import labkit
from labkit.core.profiles import default_profile_name, get_profile
from labkit.core.work import Work, WorkPlan, fit_work
from labkit.methods.base import WORK_PLANS, available_methods
from labkit.studies.cost import T4, Calibrator, RunTooLong, check_time, estimate_run, work_plan
from labkit.studies.cost_check import planned_runs
from labkit.studies.main_runs import NOTEBOOK_MAIN_RUNS, notebook_main_runs
from labkit.studies.runner import run_method
from labkit.studies.scale import resolved_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_COST_CACHE", str(tmp_path / "cost"))


def test_every_method_counts_its_work_on_every_profile() -> None:
    assert set(WORK_PLANS) == set(available_methods())
    for name in available_methods():
        for profile in ("smoke", "laptop", "gpu", "paper"):
            plan, _ = work_plan(name, profile=profile)
            assert isinstance(plan, WorkPlan) and plan.student, (name, profile)
            assert all(w.steps >= 0 and w.batch >= 1 for w in plan.all), (name, profile)


def test_fit_work_counts_steps_and_selection() -> None:
    train, val = fit_work("student", 1000, 3, 128, "lenet5-half", 500)
    assert (train.kind, train.steps, train.batch) == ("train", 3 * 8, 128)
    assert (val.kind, val.steps, val.batch) == ("eval", 3, 500)
    with pytest.raises(ValueError, match="unknown work kind"):
        Work("x", "teleport", 1, 1)


@pytest.mark.parametrize("name, options", [("kd", {}), ("kd-edge", {}), ("fsbbt", {})])
def test_estimate_matches_a_fresh_smoke_run(name: str, options: dict[str, object]) -> None:
    """The estimate against the run it predicts, measured right after on the same worker (smoke runs last seconds,
    so their fixed costs weigh more than in the laptop rows' ±25 % check, results/cost/laptop.md)."""
    est = run_method(name, profile="smoke", dry_run=True, **options)
    assert est.method_s >= 0 and est.student_s > 0 and est.describe().startswith("about ")
    measured = run_method(name, profile="smoke", progress=False, **options).record.wall_s
    assert 0.4 <= est.total_s / measured <= 2.5, (name, est.total_s, measured)


def test_calibration_is_cached_per_device(tmp_path: Path) -> None:
    first = estimate_run("kd", profile="smoke")
    assert first.calibration_s > 0
    cached = list((tmp_path / "cost").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["units"]
    again = estimate_run("kd", profile="smoke")
    assert again.calibration_s == 0 and again.phases == first.phases


def test_cuda_makes_gpu_the_default_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_profile_name() == "gpu" and get_profile(None).name == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile(None).name == "laptop"


def test_every_notebook_main_run_fits_five_minutes_on_a_t4() -> None:
    """The gpu profile's sizes against the committed T4 figures (FLOPs and ops counted here, timed there)."""
    assert T4.flops_per_s == pytest.approx(428 * 8.2e9) and 0 < T4.op_s < 1e-4
    for notebook, runs in NOTEBOOK_MAIN_RUNS.items():
        source = (ROOT / "notebooks" / f"{notebook}.ipynb").read_text()
        for name, options in runs:
            assert f'check_time(\\"{name}\\"' in source, (notebook, name)
            est = estimate_run(name, profile="gpu", assumed=T4, **options)
            assert est.total_s <= 300, (notebook, name, est.table())
            gpu_plan, _ = work_plan(name, profile="gpu", **options)
            laptop_plan, _ = work_plan(name, profile="laptop", **options)
            assert sum(w.images for w in gpu_plan.all) > 1.4 * sum(w.images for w in laptop_plan.all), (notebook, name)


def test_a_run_over_max_minutes_refuses_with_the_way_out(capsys: pytest.CaptureFixture[str]) -> None:
    est = check_time("kd", 60, profile="smoke")
    assert "kd on the smoke profile: about" in capsys.readouterr().out and est.minutes < 60
    with pytest.raises(RunTooLong, match=r"kd on the laptop profile would take about .* over MAX_MINUTES = 0\.01\. "
                                         r"Use .*raise MAX_MINUTES"):
        check_time("kd", 0.01, profile="laptop", echo=False)
    with pytest.raises(RunTooLong, match="PROFILE = 'smoke'"):
        check_time("kd", 0.3, profile="laptop", echo=False)


def test_bad_input_fails_before_any_calibration() -> None:
    with pytest.raises(labkit.UnknownNameError):
        estimate_run("no-such-method", profile="smoke")
    with pytest.raises(labkit.UnknownNameError):
        estimate_run("kd", profile="smoke", no_such_option=3)


def test_cli_estimate_prints_the_phases(capsys: pytest.CaptureFixture[str]) -> None:
    from labkit.studies.cli import main

    assert main(["run", "kd", "--profile", "smoke", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "student" in out and "kd (smoke profile, fashion-mnist): about" in out


def test_count_only_calibration_keeps_nothing(tmp_path: Path) -> None:
    cal = Calibrator(labkit.dataset_info("fashion-mnist"), "lenet5", count_only=True)
    est = estimate_run("kd", profile="smoke", assumed=T4, calibrator=cal)
    assert est.total_s > 0 and est.device.startswith("NVIDIA T4") and not (tmp_path / "cost").exists()


def _main_run_options(notebook: str, profile: str) -> tuple[str, dict[str, object]]:
    """The method and options a notebook's ``check_time`` call passes with its parameters cell's defaults: the
    parameters cell and every plain assignment or import before the call, run in order; the profile, the data set
    and the device left out, and None (the profile's own size) dropped."""
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    ns: dict[str, object] = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        for stmt in tree.body:
            call = next((n for n in ast.walk(stmt) if isinstance(n, ast.Call)
                         and isinstance(n.func, ast.Attribute | ast.Name)
                         and getattr(n.func, "attr", getattr(n.func, "id", "")) == "check_time"), None)
            if call is not None:
                method = ast.literal_eval(call.args[0])
                options: dict[str, object] = {}
                for kw in call.keywords:
                    if kw.arg in ("profile", "dataset", "device"):
                        continue
                    value = eval(compile(ast.Expression(kw.value), notebook, "eval"), ns)  # noqa: S307
                    options.update(value if kw.arg is None else {kw.arg: value})  # type: ignore[arg-type]
                return method, {k: v for k, v in options.items() if v is not None}
            if isinstance(stmt, ast.Assign | ast.Import | ast.ImportFrom):
                try:
                    exec(compile(ast.Module([stmt], []), notebook, "exec"), ns)  # noqa: S102
                except Exception:  # an assignment that needs the run (a model, a figure): not an option
                    pass
            if "PROFILE" in ns:
                ns["PROFILE"] = profile
    raise AssertionError(f"{notebook} has no check_time call")


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
def test_the_cost_checks_main_runs_are_the_notebooks_own(profile: str) -> None:
    """``cost-check --notebooks`` (and ``make gpu-check``) runs what each notebook's main run starts on that profile,
    notebook 03's per-profile sizes included: the same config, and the same training rows."""
    runs = notebook_main_runs(profile)
    assert runs["03_db3kd"][0][1]["soft_size"] == {"smoke": 150, "laptop": 3000, "gpu": 20_000}[profile]
    plan = planned_runs(["03_db3kd"], True, profile)
    assert [(label, opts) for label, _, opts, _, _ in plan] == [("03_db3kd: db3kd", runs["03_db3kd"][0][1])]
    with pytest.raises(SystemExit, match="unknown notebooks.*03_db3kd"):
        planned_runs(["03"], True, profile)
    for notebook, ((name, options),) in runs.items():
        method, notebook_options = _main_run_options(notebook, profile)
        # the same method, the same config (None = the profile's size) and the same training rows
        assert (method, resolved_config(name, profile, "fashion-mnist", notebook_options),
                notebook_options.get("train_limit")) == \
            (name, resolved_config(name, profile, "fashion-mnist", options), options.get("train_limit")), notebook
