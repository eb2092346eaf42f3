"""Scaling studies: one bench row's budget knobs on a grid, accuracy against compute, toward the paper's size.

:func:`run_scale_study` runs a bench row (e.g. ``zskd-paper``) at every point of a grid of its options (e.g.
``impressions`` × ``iterations``) for some seeds, through :func:`~labkit.studies.runner.run_method`. Each run is saved
as it finishes at ``<results>/scale/<profile>/<dataset>/<row>/<point>-seed<k>.json`` and reused when it matches: the
same grid point and seed, and no setting of its saved config that differs from what the row resolves to today (a
point run before the row's defaults or the profile's sizes changed runs again; the table names its old settings).
Besides the run's own record (test accuracy, reported only; queries; seconds) the study stores the student's accuracy
on the **labelled validation split** (``extras["validation_split_acc"]``): a data-free run never sees that split, and
it is what the lab chooses its own settings on (which point a laptop row runs). :func:`summarize_scale` reads the
records back into one :class:`ScalePoint` per grid point, :func:`write_scale` writes ``<row>.json``, ``<row>.md``
and the figure ``<row>.png`` (test accuracy against teacher passes, the paper's reported point and the bench's
laptop row marked). Before any run, :func:`plan_scale_study` says which saved runs are reused and what the others
should cost on this device (the cost model, ``docs/cost.md``); ``--estimate`` prints that and runs nothing, and
``--max-minutes`` refuses a study estimated longer.
"""
from __future__ import annotations

import inspect
import itertools
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labkit.core.data import canonical_name, load_dataset
from labkit.core.errors import BenchError, LabkitError
from labkit.core.metrics import accuracy
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord, load_records
from labkit.methods.base import get_method
from labkit.studies.bench import estimate_entry, get_entries
from labkit.studies.cost import RunTooLong, describe_seconds
from labkit.studies.paper_figures import primary_figure
from labkit.studies.results_layout import BENCH, SCALE, study_dir
from labkit.studies.runner import run_method

__all__ = ["PlannedRun", "ScalePoint", "chosen_point", "describe_plan", "grid_points", "parse_grid", "plan_scale_study",
           "point_key", "resolved_config", "run_scale_study", "scale_dir", "scale_figure", "summarize_scale",
           "write_scale"]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["impressions=1000,3000", "iterations=100"]`` → ``{"impressions": [1000, 3000], "iterations": [100]}``
    (values read as JSON where they parse, else kept as text; a JSON list's commas do not split values, e.g.
    ``ingredients=["impressions"],["impressions","authors-augmentation"]``; dashes in names become underscores)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[1]:
            raise BenchError(f"Cannot read the grid axis {item!r}: write OPTION=V1,V2,..., e.g. iterations=100,400.")
        name, raw = item.split("=", 1)
        values = []
        for part in _split_top_level(raw):
            try:
                values.append(json.loads(part))
            except json.JSONDecodeError:
                values.append(part)
        grid[name.strip().replace("-", "_")] = values
    return grid


def _split_top_level(raw: str) -> list[str]:
    """``raw`` split at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in raw:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last axis varies fastest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def point_key(options: dict[str, Any]) -> str:
    """A file-name-safe key for a grid point, e.g. ``impressions=1000+iterations=100`` (a list's values joined by
    ``-``)."""
    def text(v: Any) -> str:
        raw = "-".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        return re.sub(r"[^A-Za-z0-9._-]", "-", raw)

    return "+".join(f"{k}={text(v)}" for k, v in sorted(options.items()))


def scale_dir(row: str, profile: str = "laptop", dataset: str = "fashion-mnist",
              out_dir: str | Path | None = None) -> Path:
    """``<results>/scale/<profile>/<dataset>/<row>/``."""
    return study_dir(SCALE, get_profile(profile).name, canonical_name(dataset), out_dir) / row


@dataclass(frozen=True)
class ScalePoint:
    """One grid point: its options, and test / validation accuracy over seeds with what the runs cost."""

    key: str
    options: dict[str, Any]
    seeds: tuple[int, ...]
    test_accs: tuple[float, ...]
    val_accs: tuple[float, ...]
    queries: float
    wall_s: float
    convergence_gap: float | None = None  # the crafting loss's gap to its floor, where the method records one
    convergence_gap_by_beta: dict[str, float] | None = None  # the same per Dirichlet β (mean over the seeds)
    #: settings its runs used that differ from what the row resolves to today (None: none differ), e.g. a point
    #: measured before the row's student epochs changed
    run_at: dict[str, Any] | None = None

    @staticmethod
    def _ms(values: Sequence[float]) -> tuple[float, float]:
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def test(self) -> tuple[float, float]:
        """Mean and std of the test accuracy (reported only)."""
        return self._ms(self.test_accs)

    @property
    def val(self) -> tuple[float, float]:
        """Mean and std of the accuracy on the labelled validation split (what the lab chooses on)."""
        return self._ms(self.val_accs)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def resolved_config(method: str, profile: str, dataset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The config a run of ``method`` with ``options`` resolves to on ``profile`` (as its record's
    ``extras["config"]`` stores it): the row's options, the grid point's, and the profile's sizes for the rest
    (``run_method``'s own keywords, e.g. ``train_limit``, are not the method's config and are left out, and so are
    the settings of ingredients that are off, which the run never reads)."""
    runner = set(inspect.signature(run_method).parameters)
    m = get_method(method)(**{k: v for k, v in options.items() if k not in runner})
    cfg = m.config_class.for_profile(get_profile(profile), dataset, **m.options)
    inert = cfg.inert_settings()
    return {k: v for k, v in _as_json(cfg.as_dict()).items() if k not in inert}


def _matches(path: Path, row: str, profile: str, dataset: str, seed: int, options: dict[str, Any],
             config: dict[str, Any] | None = None) -> bool:
    """A saved record is this point's run: the same row, profile, data set, seed and grid point, and, where the
    record keeps its config, no setting that differs from what the run would resolve to now (a row whose
    defaults or profile sizes changed since runs again; a setting added since is not held against it)."""
    if not path.exists():
        return False
    try:
        rec = load_records(path)[0]
    except (json.JSONDecodeError, TypeError, KeyError, IndexError):
        return False
    scale = rec.extras.get("scale", {})
    saved = rec.extras.get("config")
    if config is not None and isinstance(saved, dict) and any(
            k in saved and saved[k] != v for k, v in config.items()):
        return False
    return (isinstance(scale, dict) and scale.get("row") == row and rec.profile == profile and rec.dataset == dataset
            and rec.seed == seed and scale.get("options") == _as_json(options))


@dataclass(frozen=True)
class PlannedRun:
    """One (grid point, seed) of a study: where its record goes, whether a saved one is reused, and the cost model's
    estimate of its seconds (None when reused, or when the method has no estimate)."""

    point: dict[str, Any]
    seed: int
    path: Path
    reuse: bool
    estimate_s: float | None
    device: str = ""


def plan_scale_study(row: str, grid: dict[str, list[Any]], seeds: Sequence[int] = (0,), *, profile: str = "laptop",
                     dataset: str = "fashion-mnist", out_dir: str | Path | None = None, force: bool = False,
                     device: str = "cpu") -> list[PlannedRun]:
    """Every run of a study, before any runs: which saved records match (:func:`_matches`) and, for the others, the
    cost model's estimate on this device (:func:`~labkit.studies.cost.estimate_run`, once per grid point)."""
    entry = get_entries([row])[0]
    prof, dataset = get_profile(profile), canonical_name(dataset)
    folder = scale_dir(entry.key, prof.name, dataset, out_dir)
    points = grid_points(grid)
    if not points:
        raise BenchError("The grid is empty: give at least one OPTION=VALUES axis.")
    plan: list[PlannedRun] = []
    for point in points:
        options = {**entry.option_dict(), **point}
        config = resolved_config(entry.method, prof.name, dataset, options)
        estimate = None
        for seed in seeds:
            path = folder / f"{point_key(point)}-seed{seed}.json"
            if not force and _matches(path, entry.key, prof.name, dataset, seed, point, config):
                plan.append(PlannedRun(point, seed, path, True, None))
                continue
            if estimate is None:
                estimate = estimate_entry(entry, options, dataset, prof.name, device)
            plan.append(PlannedRun(point, seed, path, False, estimate.total_s if estimate else None,
                                   estimate.device if estimate else ""))
    return plan


def describe_plan(row: str, plan: Sequence[PlannedRun]) -> str:
    """'zskd-paper: 6 runs to do, about 21.4 min on this CPU (2 threads); 3 saved runs reused'."""
    todo = [r for r in plan if not r.reuse]
    known = [r for r in todo if r.estimate_s is not None]
    text = f"{row}: {len(todo)} {'run' if len(todo) == 1 else 'runs'} to do"
    if known:
        text += f", {describe_seconds(sum(r.estimate_s or 0.0 for r in known), known[0].device)}"
        text += f" for {len(known)} of them" if len(known) < len(todo) else ""
    reused = len(plan) - len(todo)
    return text + (f"; {reused} saved {'run' if reused == 1 else 'runs'} reused" if reused else "")


def run_scale_study(row: str, grid: dict[str, list[Any]], seeds: Sequence[int] = (0,), *, profile: str = "laptop",
                    dataset: str = "fashion-mnist", out_dir: str | Path | None = None, force: bool = False,
                    device: str = "cpu", progress: bool = False, max_minutes: float | None = None,
                    log: Callable[[str], None] | None = print) -> list[ScalePoint]:
    """Run ``row`` (a bench row: its options are the base) at every grid point for ``seeds``, saving each record as
    it finishes (reused unless ``force``), then summarise and write the study's files. The study's estimate is
    said first; with ``max_minutes`` a study estimated longer refuses (:class:`~labkit.studies.cost.RunTooLong`)
    before anything runs."""
    say = log or (lambda _msg: None)
    entry = get_entries([row])[0]
    prof, dataset = get_profile(profile), canonical_name(dataset)
    plan = plan_scale_study(row, grid, seeds, profile=prof.name, dataset=dataset, out_dir=out_dir, force=force,
                            device=device)
    say(f"[scale] {describe_plan(entry.key, plan)} (estimate)")
    total = sum(r.estimate_s or 0.0 for r in plan)
    if max_minutes is not None and total > 60 * max_minutes:
        raise RunTooLong(f"the {entry.key} study would take {describe_seconds(total, plan[0].device)} for its "
                         f"{sum(not r.reuse for r in plan)} runs, over --max-minutes {max_minutes:g}. Use fewer seeds "
                         "or grid points, or raise --max-minutes if you mean to wait that long.")
    val = load_dataset(dataset, "val", device=device)
    for planned in plan:
        point, seed, path = planned.point, planned.seed, planned.path
        options = {**entry.option_dict(), **point}
        if planned.reuse:
            say(f"[scale] {entry.key} {point_key(point)} seed {seed}: reusing {path}")
            continue
        t0 = time.perf_counter()
        run = run_method(entry.method, dataset=dataset, profile=prof.name, seed=seed, device=device,
                         progress=progress, teacher_arch=entry.teacher or None, student_arch=entry.student or None,
                         **options)
        rec = run.record
        rec.extras["validation_split_acc"] = accuracy(run.student, val.x, val.y)
        rec.extras["scale"] = {"row": entry.key, "options": json.loads(json.dumps(point, default=str)),
                               "elapsed_s": round(time.perf_counter() - t0, 2)}
        rec.save(path)
        val_acc = float(rec.extras["validation_split_acc"])  # type: ignore[arg-type]
        say(f"[scale] {entry.key} {point_key(point)} seed {seed}: validation {100 * val_acc:.2f}%, "
            f"test {100 * rec.student_acc:.2f}%, {rec.queries:,} queries, {rec.wall_s:.0f} s")
    summary = summarize_scale(entry.key, prof.name, dataset, out_dir)
    write_scale(entry.key, summary, prof.name, dataset, out_dir)
    return summary


def _gap(rec: ResultRecord) -> float | None:
    conv = rec.extras.get("crafting_convergence")
    return float(conv["gap_to_floor"]) if isinstance(conv, dict) and conv.get("gap_to_floor") is not None else None


def _gaps_by_beta(recs: Sequence[ResultRecord]) -> dict[str, float] | None:
    """The crafting gap per β, each the mean over the records that carry it (None where none does)."""
    found: dict[str, list[float]] = {}
    for rec in recs:
        conv = rec.extras.get("crafting_convergence")
        by_beta = conv.get("gap_to_floor_by_beta") if isinstance(conv, dict) else None
        for beta, gap in (by_beta or {}).items():
            if gap is not None:
                found.setdefault(beta, []).append(float(gap))
    return {beta: statistics.fmean(v) for beta, v in found.items()} or None


def summarize_scale(row: str, profile: str = "laptop", dataset: str = "fashion-mnist",
                    out_dir: str | Path | None = None) -> list[ScalePoint]:
    """Every grid point saved for ``row``, its seeds together, ordered by compute (teacher passes)."""
    folder = scale_dir(row, profile, dataset, out_dir)
    by_key: dict[str, list[ResultRecord]] = {}
    for path in sorted(folder.glob("*-seed*.json")):
        rec = load_records(path)[0]
        scale = rec.extras.get("scale")
        if isinstance(scale, dict) and scale.get("row") == row:
            by_key.setdefault(point_key(dict(scale["options"])), []).append(rec)
    points = []
    for key, recs in by_key.items():
        recs.sort(key=lambda r: r.seed)
        gaps = [g for g in (_gap(r) for r in recs) if g is not None]
        options = dict(recs[0].extras["scale"]["options"])  # type: ignore[index]
        points.append(ScalePoint(key, options, tuple(r.seed for r in recs), tuple(r.student_acc for r in recs),
                                 tuple(float(r.extras["validation_split_acc"]) for r in recs),  # type: ignore[arg-type]
                                 statistics.fmean(r.queries for r in recs), statistics.fmean(r.wall_s for r in recs),
                                 statistics.fmean(gaps) if gaps else None, _gaps_by_beta(recs),
                                 _run_at(row, profile, dataset, options, recs)))
    return sorted(points, key=lambda p: (p.queries, p.key))


def _run_at(row: str, profile: str, dataset: str, options: dict[str, Any],
            recs: Sequence[ResultRecord]) -> dict[str, Any] | None:
    """The settings a point's saved runs used where they differ from the row's config today."""
    try:
        entry = get_entries([row])[0]
        now = resolved_config(entry.method, profile, dataset, {**entry.option_dict(), **options})
    except LabkitError:  # a row no longer on the bench, or an option it no longer takes
        return None
    differ: dict[str, Any] = {}
    for rec in recs:
        saved = rec.extras.get("config")
        if isinstance(saved, dict):
            differ |= {k: saved[k] for k, v in now.items() if k in saved and saved[k] != v}
    return differ or None


def chosen_point(points: Sequence[ScalePoint]) -> ScalePoint | None:
    """The point with the best mean on the labelled validation split, among the points measured with the most seeds
    (a one-seed point is shown but not chosen: its seed cannot be weighed against a three-seed mean)."""
    if not points:
        return None
    most = max(len(p.seeds) for p in points)
    return max((p for p in points if len(p.seeds) == most), key=lambda p: p.val[0])


def _bench_point(row: str, profile: str, dataset: str, out_dir: str | Path | None) -> tuple[float, float] | None:
    """The bench's committed (queries, mean test accuracy) of ``row`` at ``profile``, if its board has the row."""
    path = study_dir(BENCH, profile, dataset, out_dir) / "leaderboard.json"
    if not path.exists():
        return None
    for e in json.loads(path.read_text()).get("entries", []):
        if e.get("key") == row and e.get("student_acc") and e.get("queries"):
            return float(e["queries"]["mean"]), float(e["student_acc"]["mean"])
    return None


def write_scale(row: str, points: Sequence[ScalePoint], profile: str = "laptop", dataset: str = "fashion-mnist",
                out_dir: str | Path | None = None) -> tuple[Path, Path, Path]:
    """Write ``<row>.json``, ``<row>.md`` and ``<row>.png`` beside the records; the best point on the validation
    split is marked (that is the choice the study supports); test accuracy is reported beside it."""
    folder = scale_dir(row, profile, dataset, out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    best = chosen_point(points)
    fig = primary_figure(row, dataset)
    bench = _bench_point(row, profile, dataset, out_dir)
    data = {"row": row, "profile": profile, "dataset": dataset,
            "chosen_on_validation": best.key if best else None,
            "reported": fig.to_dict() if fig else None, "bench_point": bench,
            "points": [{**asdict(p), "test_mean": p.test[0], "test_std": p.test[1], "val_mean": p.val[0],
                        "val_std": p.val[1]} for p in points]}
    js, md, png = folder / f"{row}.json", folder / f"{row}.md", folder / f"{row}.png"
    js.write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = [f"# Scaling study: {row} ({profile} profile, {dataset})", "",
             "Validation = the labelled validation split (what the lab chooses its settings on); test is reported "
             "only; the best point is chosen among those measured with the most seeds. Teacher passes = the run's "
             "counted box queries (a white-box crafting step counts one per image). \"run at\" names a point's "
             "settings that differ from the row's today (its runs predate a change of the row).",
             "", "| point | seeds | validation % | test % | teacher passes | run s | crafting gap to floor |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for p in points:
        mark = " **(best on validation)**" if best is p else ""
        gap = "—" if p.convergence_gap is None else f"{100 * p.convergence_gap:.1f} %"
        then = "" if not p.run_at else f" (run at {', '.join(f'{k}={v}' for k, v in sorted(p.run_at.items()))})"
        lines.append(f"| `{p.key}`{then}{mark} | {','.join(map(str, p.seeds))} "
                     f"| {100 * p.val[0]:.2f} ± {100 * p.val[1]:.2f} | {100 * p.test[0]:.2f} ± {100 * p.test[1]:.2f} "
                     f"| {p.queries:,.0f} | {p.wall_s:.0f} | {gap} |")
    if fig and fig.student_acc is not None:
        lines += ["", f"Reported by the paper: {100 * fig.student_acc:.2f}% ({fig.paper}, {fig.setting})."]
    md.write_text("\n".join(lines) + "\n")
    _scale_figure(points, row, png, fig.student_acc if fig else None, bench)
    return js, md, png


def scale_figure(points: Sequence[ScalePoint], row: str, reported: float | None = None,
                 bench: tuple[float, float] | None = None, own: tuple[float, float] | None = None,
                 ceiling: tuple[str, float] | None = None, by: str | None = None,
                 annotate: str | None = None) -> Any:
    """Test accuracy against teacher passes, one marker per grid point (mean ± std over seeds), the validation
    split beside it, the bench's laptop row, the paper's reported figure, ``own`` = (passes, accuracy) of a
    learner's run, and ``ceiling`` = (label, test accuracy) of a reference the study is read against (e.g. the
    student on as many real images). ``by`` (an option name, e.g. ``"measure"``) gives each of its values its own
    colour; ``annotate`` (an option name, e.g. ``"train_size"``) writes its value beside each point. Points that ask
    no query (e.g. DB3KD's SD) sit at a third of the smallest count on the axis, marked "0 queries". Returns the
    matplotlib figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(8.4, 3.8))
    positive = [p.queries for p in points if p.queries > 0]
    zero_x = min(positive) / 3 if positive else 1.0  # a log axis has no 0: queries-free points sit left of the rest
    groups: dict[str, list[ScalePoint]] = {}
    for p in points:
        groups.setdefault("" if by is None else f"{by}={p.options.get(by)}", []).append(p)
    for name, group in groups.items():
        xs = [p.queries if p.queries > 0 else zero_x for p in group]
        ax.errorbar(xs, [100 * p.test[0] for p in group], yerr=[100 * p.test[1] for p in group], fmt="o", ms=5,
                    label=f"{name}: test (mean ± std)" if by else "this study: test (mean ± std over seeds)")
        for x, p in zip(xs, group if annotate is not None else []):
            value = p.options.get(annotate)  # type: ignore[arg-type]
            ax.annotate(f"{value:,}" if isinstance(value, int) else str(value), (x, 100 * p.test[0]), xytext=(4, -9),
                        textcoords="offset points", fontsize=6, color="dimgray")
        ax.plot(xs, [100 * p.val[0] for p in group], "x", color="gray",
                label="this study: validation split" if name == next(iter(groups)) else None)
    if positive and len(positive) < len(points):
        ax.axvline(zero_x, color="gray", lw=0.6, ls=":")
        ax.annotate("0 queries", (zero_x, 0.02), xycoords=("data", "axes fraction"), fontsize=7, color="gray",
                    rotation=90, ha="right")
    if bench is not None:
        ax.plot([bench[0]], [100 * bench[1]], "s", color="tab:green", label="bench laptop row")
    if own is not None:
        ax.plot([own[0]], [100 * own[1]], "D", color="black", label="your run")
    if reported is not None:
        ax.axhline(100 * reported, color="tab:red", ls="--", lw=1, label=f"paper, reported ({100 * reported:.2f}%)")
    if ceiling is not None:
        ax.axhline(100 * ceiling[1], color="tab:purple", ls=":", lw=1.2,
                   label=f"{ceiling[0]} ({100 * ceiling[1]:.2f}%)")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: the minor ones overlap on a short axis
    ax.set_xlabel("teacher passes (counted queries)")
    ax.set_ylabel("accuracy %")
    ax.set_title(f"{row}: accuracy against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a point
    fig.tight_layout()
    plt.close(fig)  # returned, not left open: a notebook shows it once, from the cell's value
    return fig


def _scale_figure(points: Sequence[ScalePoint], row: str, path: Path, reported: float | None,
                  bench: tuple[float, float] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    scale_figure(points, row, reported, bench).savefig(path, dpi=110)
