"""Scaling studies: grid parsing, one smoke study end to end (records, validation accuracy, reuse, table, figure)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit.core.errors import BenchError, UnknownNameError
from labkit.studies.scale import (
    ScalePoint,
    chosen_point,
    describe_plan,
    grid_points,
    parse_grid,
    plan_scale_study,
    point_key,
    resolved_config,
    run_scale_study,
    scale_figure,
    summarize_scale,
    write_scale,
)


def test_grid_axes_parse_into_every_combination() -> None:
    grid = parse_grid(["impressions=100,200", "craft-lr=0.01", "parametrisation=minmax,clamp"])
    assert grid == {"impressions": [100, 200], "craft_lr": [0.01], "parametrisation": ["minmax", "clamp"]}
    points = grid_points(grid)
    assert len(points) == 4 and points[1] == {"impressions": 100, "craft_lr": 0.01, "parametrisation": "clamp"}
    assert point_key({"iterations": 5, "betas": (1.0, 0.1)}) == "betas=1.0-0.1+iterations=5"
    with pytest.raises(BenchError, match="OPTION=V1,V2"):
        parse_grid(["impressions"])
    lists = parse_grid(['ingredients=["impressions"],["impressions","authors-augmentation"]'])
    assert lists == {"ingredients": [["impressions"], ["impressions", "authors-augmentation"]]}
    assert point_key(grid_points(lists)[1]) == "ingredients=impressions-authors-augmentation"


def test_a_smoke_study_saves_records_with_the_validation_split_and_reuses_them(tmp_path: Path) -> None:
    lines: list[str] = []
    grid = {"epochs": [1, 2]}
    points = run_scale_study("kd-edge", grid, [0], profile="smoke", out_dir=tmp_path, log=lines.append)
    folder = tmp_path / "scale" / "smoke" / "fashion-mnist" / "kd-edge"
    assert sorted(p.name for p in folder.glob("*.json")) == ["epochs=1-seed0.json", "epochs=2-seed0.json",
                                                             "kd-edge.json"]
    rec = json.loads((folder / "epochs=2-seed0.json").read_text())
    assert 0.0 <= rec["extras"]["validation_split_acc"] <= 1.0 and rec["options"]["epochs"] == 2
    assert {p.key for p in points} == {"epochs=1", "epochs=2"} and all(p.seeds == (0,) for p in points)
    summary = json.loads((folder / "kd-edge.json").read_text())
    assert summary["chosen_on_validation"] in {"epochs=1", "epochs=2"}
    assert "best on validation" in (folder / "kd-edge.md").read_text()
    assert (folder / "kd-edge.png").read_bytes()[:4] == b"\x89PNG"
    fig = scale_figure(points, "kd-edge", ceiling=("400 real images", 0.5))
    assert any("400 real images (50.00%)" == t.get_text() for t in fig.axes[0].get_legend().get_texts())
    lines.clear()
    again = run_scale_study("kd-edge", grid, [0], profile="smoke", out_dir=tmp_path, log=lines.append)
    assert lines[0] == "[scale] kd-edge: 0 runs to do; 2 saved runs reused (estimate)"
    assert all("reusing" in line for line in lines[1:]) and len(lines) == 3
    assert [p.test_accs for p in again] == [p.test_accs for p in summarize_scale("kd-edge", "smoke", "fashion-mnist",
                                                                                 tmp_path)]
    with pytest.raises(UnknownNameError):
        run_scale_study("no-such-row", grid, [0], profile="smoke", out_dir=tmp_path, log=None)


def test_a_point_run_before_the_row_changed_is_named_and_run_again(tmp_path: Path) -> None:
    """A saved point whose config differs from what the row resolves to today (its defaults or the profile's sizes
    changed since) is not reused: the table says what it ran at, and the next study runs it again."""
    grid = {"epochs": [1, 2]}
    run_scale_study("kd-edge", grid, [0], profile="smoke", out_dir=tmp_path, log=None)
    path = tmp_path / "scale" / "smoke" / "fashion-mnist" / "kd-edge" / "epochs=1-seed0.json"
    rec = json.loads(path.read_text())
    assert rec["extras"]["config"]["batch_size"] != 7
    rec["extras"]["config"]["batch_size"] = 7  # as if the row's batch had been 7 when this point ran
    path.write_text(json.dumps(rec))
    stale = {p.key: p.run_at for p in summarize_scale("kd-edge", "smoke", "fashion-mnist", tmp_path)}
    assert stale == {"epochs=1": {"batch_size": 7}, "epochs=2": None}
    lines: list[str] = []
    again = run_scale_study("kd-edge", grid, [0], profile="smoke", out_dir=tmp_path, log=lines.append)
    assert ["reusing" in line for line in lines[1:]] == [False, True], lines
    assert all(p.run_at is None for p in again)
    rec["extras"]["config"]["batch_size"] = 7
    path.write_text(json.dumps(rec))
    write_scale("kd-edge", summarize_scale("kd-edge", "smoke", "fashion-mnist", tmp_path), "smoke", out_dir=tmp_path)
    assert "| `epochs=1` (run at batch_size=7) |" in (path.parent / "kd-edge.md").read_text()
    # run_method's own keywords on a grid (not the method's config) still resolve
    assert resolved_config("db3kd", "smoke", "fashion-mnist", {"train_limit": 1000, "epochs": 2})["epochs"] == 2


def test_the_settings_of_an_ingredient_that_is_off_are_not_held_against_a_saved_run() -> None:
    """A setting only an ingredient reads (ZSKD's ``augmentations_per_step``, IDEAL's ``round_samples``) is left out
    of the resolved config while that ingredient is off, so a point that ran at another value of it is neither named
    "run at" nor run again; with the ingredient on, the setting counts (control)."""
    from labkit.methods.ideal import IDEALConfig
    from labkit.methods.zskd import AUTHORS_AUGMENTATION, IMPRESSIONS, ZSKDConfig

    off = ZSKDConfig.for_profile("laptop", variant="authors-code", ingredients=(IMPRESSIONS,))
    on = ZSKDConfig.for_profile("laptop", variant="authors-code")
    assert on.uses(AUTHORS_AUGMENTATION) and "augmentations_per_step" not in on.inert_settings()
    assert {"augmentations_per_step", "copies", "copy_box", "copy_blur"} <= off.inert_settings()
    no_copies = resolved_config("zskd", "laptop", "fashion-mnist",
                                {"variant": "authors-code", "ingredients": [IMPRESSIONS]})
    assert "augmentations_per_step" not in no_copies and "iterations" in no_copies
    assert resolved_config("zskd", "laptop", "fashion-mnist",
                           {"variant": "authors-code"})["augmentations_per_step"] == 8  # on: it counts
    assert IDEALConfig.for_profile("laptop").inert_settings() == {"round_samples"}
    assert IDEALConfig.for_profile("laptop", variant="round-samples").inert_settings() == frozenset()


def test_the_choice_weighs_only_points_with_the_most_seeds() -> None:
    """A lucky one-seed point is shown, not chosen: the choice is among the three-seed means on validation."""
    def point(key: str, vals: tuple[float, ...]) -> ScalePoint:
        return ScalePoint(key, {}, tuple(range(len(vals))), vals, vals, 1.0, 1.0)

    lucky, steady, weaker = point("lucky", (0.9,)), point("steady", (0.6, 0.5, 0.55)), point("weak", (0.5,) * 3)
    assert chosen_point([lucky, steady, weaker]) is steady and chosen_point([]) is None


def test_points_without_queries_are_drawn_and_series_get_their_own_colour() -> None:
    """DB3KD's SD asks nothing: on the log axis it sits left of the others, marked; ``by`` splits the series."""
    def point(measure: str, queries: float, acc: float) -> ScalePoint:
        return ScalePoint(f"measure={measure}+q={queries}", {"measure": measure}, (0, 1), (acc, 0.01), (acc, 0.01),
                          queries, 1.0)

    points = [point("sd", 0, 0.80), point("bd", 1e4, 0.82), point("bd", 1e5, 0.85), point("mbd", 1e5, 0.84)]
    fig = scale_figure(points, "db3kd-paper", by="measure", annotate="measure")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [lb for lb in labels if "test" in lb] == [f"measure={m}: test (mean ± std)" for m in ("sd", "bd", "mbd")]
    sd_x = ax.lines[0].get_xdata()  # the first series' line: SD, at a third of the smallest count
    assert list(sd_x) == [pytest.approx(1e4 / 3)] and any(t.get_text() == "0 queries" for t in ax.texts)
    assert sorted(t.get_text() for t in ax.texts if t.get_text() != "0 queries") == ["bd", "bd", "mbd", "sd"]
    plain = scale_figure(points, "db3kd-paper")  # without ``by``: one series, the SD point still on the axis
    assert len(plain.axes[0].lines[0].get_xdata()) == 4 and min(plain.axes[0].lines[0].get_xdata()) > 0


def test_a_study_says_its_estimate_first_and_refuses_one_over_max_minutes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The cost model's estimate of the runs still to do, before any runs; saved runs cost nothing; a study over
    ``max_minutes`` stops before its first run; ``--estimate`` runs nothing."""
    from labkit.studies.cli import main
    from labkit.studies.cost import RunTooLong

    monkeypatch.setenv("LABKIT_COST_CACHE", str(tmp_path / "cost"))
    lines: list[str] = []
    run_scale_study("kd-edge", {"epochs": [1]}, [0], profile="smoke", out_dir=tmp_path, log=lines.append)
    assert re.fullmatch(r"\[scale\] kd-edge: 1 run to do, about \d+ s on this CPU \(\d+ threads?\) \(estimate\)",
                        lines[0]), lines[0]
    plan = plan_scale_study("kd-edge", {"epochs": [1, 2]}, [0, 1], profile="smoke", out_dir=tmp_path)
    assert [(r.point["epochs"], r.seed, r.reuse) for r in plan] == [(1, 0, True), (1, 1, False), (2, 0, False),
                                                                   (2, 1, False)]
    assert all(r.estimate_s is None for r in plan if r.reuse) and all(r.estimate_s for r in plan if not r.reuse)
    assert describe_plan("kd-edge", plan).startswith("kd-edge: 3 runs to do, about ") and \
        describe_plan("kd-edge", plan).endswith("; 1 saved run reused")
    folder = tmp_path / "scale" / "smoke" / "fashion-mnist" / "kd-edge"
    saved = sorted(p.name for p in folder.iterdir())
    with pytest.raises(RunTooLong, match=r"the kd-edge study would take about .* for its 3 runs, over --max-minutes "
                                         r"0\.001\. Use fewer seeds or grid points"):
        run_scale_study("kd-edge", {"epochs": [1, 2]}, [0, 1], profile="smoke", out_dir=tmp_path, max_minutes=0.001,
                        log=None)
    assert main(["scale", "kd-edge", "--grid", "epochs=1,2", "--seeds", "0", "1", "--profile", "smoke",
                 "--out-dir", str(tmp_path), "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "epochs=1 seed 0: saved: reused" in out and "(estimate; nothing ran)" in out
    assert sorted(p.name for p in folder.iterdir()) == saved  # neither the refusal nor --estimate ran anything
