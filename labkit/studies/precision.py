"""bf16 against fp32, per method: accuracy over seeds and time, on the bench's own rows.

:func:`run_precision_study` runs one bench row per method again with ``precision="bf16"`` (the box, and the
synthesis loops: impression crafting, MEKD's G and D, IDEAL's generator) and compares each with the same row's fp32
records in ``<results>/bench/<profile>/<dataset>/``. bf16 is a candidate for a profile default only where the bf16
mean accuracy on the run's *selection* split (``val_acc``: the labelled validation split, or the teacher-labelled
holdout of a data-free method) stays within one fp32 standard deviation *and* the run is faster; the table says which
rows pass. Test accuracy is reported beside it and never read by the rule. Records go to
``<results>/precision/<profile>/<dataset>/<row>-seed<k>.json``, the table to ``precision.json`` and ``precision.md``.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from labkit.core.blackbox import resolve_precision
from labkit.core.data import canonical_name
from labkit.core.errors import BenchError
from labkit.core.profiles import get_profile
from labkit.core.results import ResultRecord
from labkit.studies.bench import execute_bench, get_entries, load_saved_run, plan_bench, record_path
from labkit.studies.environment import environment_info
from labkit.studies.results_layout import BENCH, PRECISION, study_dir

__all__ = ["PRECISION_ROWS", "PrecisionRow", "compare_precision", "precision_markdown", "run_precision_study"]

#: one row per method whose inner loops bf16 can change (the box, crafting, generator steps)
PRECISION_ROWS: tuple[str, ...] = ("kd", "fsbbt", "db3kd-paper", "zsdb3kd+bank", "zskd-paper", "mekd-soft-paper",
                                   "ideal")


@dataclass
class PrecisionRow:
    """One row's fp32 and bf16 runs side by side (accuracy mean ± std over seeds, seconds as means)."""

    key: str
    seeds: list[int]
    fp32_acc: float
    fp32_std: float
    bf16_acc: float
    bf16_std: float
    fp32_val: float
    fp32_val_std: float
    bf16_val: float
    bf16_val_std: float
    fp32_method_s: float | None
    bf16_method_s: float | None
    fp32_wall_s: float
    bf16_wall_s: float
    within_one_std: bool
    faster: bool

    @property
    def default_candidate(self) -> bool:
        """bf16 may become the profile's default for this row: as accurate on the selection split (within one fp32
    std) and faster."""
        return self.within_one_std and self.faster


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else statistics.fmean(v for v in values if v is not None)


def compare_precision(key: str, fp32: Sequence[ResultRecord], bf16: Sequence[ResultRecord]) -> PrecisionRow:
    """Compare one row's fp32 and bf16 records (the same seeds on both sides, at least two)."""
    seeds = sorted(r.seed for r in fp32)
    if seeds != sorted(r.seed for r in bf16) or len(seeds) < 2:
        raise BenchError(f"{key}: fp32 seeds {seeds} and bf16 seeds {sorted(r.seed for r in bf16)} must be the same "
                         "two or more seeds; run the bench for the missing fp32 seeds first.")
    if any(r.val_acc is None for r in (*fp32, *bf16)):
        raise BenchError(f"{key}: a record has no selection-split accuracy (val_acc); the rule reads only that.")
    fa, fs = _mean_std([r.student_acc for r in fp32])
    ba, bs = _mean_std([r.student_acc for r in bf16])
    fv, fvs = _mean_std([float(r.val_acc or 0.0) for r in fp32])
    bv, bvs = _mean_std([float(r.val_acc or 0.0) for r in bf16])
    fm, bm = _mean_or_none([r.method_s for r in fp32]), _mean_or_none([r.method_s for r in bf16])
    fw, bw = statistics.fmean(r.wall_s for r in fp32), statistics.fmean(r.wall_s for r in bf16)
    return PrecisionRow(key, seeds, fa, fs, ba, bs, fv, fvs, bv, bvs, fm, bm, fw, bw,
                        within_one_std=abs(bv - fv) <= fvs, faster=bw < fw)


def precision_markdown(rows: Sequence[PrecisionRow], profile: str, dataset: str, environment: dict[str, Any]) -> str:
    """The study's table: accuracy and seconds per row, and whether bf16 passes the default rule."""
    def sec(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f}"

    lines = [f"# bf16 against fp32: {profile} profile, {dataset}", "",
             f"Machine: {environment.get('processor', '?')}, {environment.get('cpu_count', '?')} cores; torch "
             f"{environment.get('versions', {}).get('torch', '?')}. Accuracy mean ± std over the seeds: `selection` "
             "is the run's selection split (the labelled validation split, or a data-free method's teacher-labelled "
             "holdout), the only figure the rule reads; test is reported. Seconds are means per run: the method's "
             "own part (synthesis, queries) and the whole run. bf16 is a default candidate only where its selection "
             "accuracy is within one fp32 std and it is faster.",
             "", "| row | seeds | selection % fp32 | selection % bf16 | test % fp32 | test % bf16 | "
             "method s fp32 → bf16 | run s fp32 → bf16 | within 1 std | faster | candidate? |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.key} | {','.join(map(str, r.seeds))} | {100 * r.fp32_val:.2f} ± {100 * r.fp32_val_std:.2f} "
                     f"| {100 * r.bf16_val:.2f} ± {100 * r.bf16_val_std:.2f} | "
                     f"{100 * r.fp32_acc:.2f} ± {100 * r.fp32_std:.2f} | "
                     f"{100 * r.bf16_acc:.2f} ± {100 * r.bf16_std:.2f} | "
                     f"{sec(r.fp32_method_s)} → {sec(r.bf16_method_s)} | {r.fp32_wall_s:.1f} → {r.bf16_wall_s:.1f} | "
                     f"{'yes' if r.within_one_std else 'no'} | {'yes' if r.faster else 'no'} | "
                     f"{'yes' if r.default_candidate else 'no'} |")
    return "\n".join(lines) + "\n"


def run_precision_study(rows: Sequence[str] = PRECISION_ROWS, seeds: Sequence[int] = (0, 1, 2), *,
                        profile: str | None = "laptop", dataset: str = "fashion-mnist",
                        out_dir: str | Path | None = None, jobs: int = 1, threads_per_job: int | None = None,
                        force: bool = False, progress: bool = True,
                        log: Callable[[str], None] | None = print) -> list[PrecisionRow]:
    """Run ``rows`` at bf16 for ``seeds`` (reusing saved bf16 runs unless ``force``), compare each with the bench's
    fp32 records of the same seeds, and write ``precision.json`` / ``precision.md`` (with every other row of
    :data:`PRECISION_ROWS` whose bf16 runs an earlier call saved, so rows timed with other ``jobs`` or ``threads``
    can be run apart). The fp32 records must exist (``python -m labkit bench --only ROW --seeds ...`` makes them);
    run both sides the same way (the bench's ``--jobs`` and ``--threads``) so that their seconds compare."""
    say = log or (lambda _msg: None)
    dataset, prof = canonical_name(dataset), get_profile(profile)
    resolve_precision("bf16", torch.device("cpu"), "score")  # a CPU without bf16 stops here
    entries = get_entries(rows)
    bench_dir = study_dir(BENCH, prof.name, dataset, out_dir)
    fp32: dict[str, list[ResultRecord]] = {}
    for e in entries:
        recs = [load_saved_run(record_path(bench_dir, e.key, s), e.key, prof.name, dataset, s, e.option_dict())
                for s in seeds]
        missing = [s for s, r in zip(seeds, recs) if r is None]
        if missing:
            raise BenchError(f"{e.key}: no fp32 bench record for seeds {missing} in {bench_dir}. Run "
                             f"`python -m labkit bench --profile {prof.name} --only {e.key} --seeds "
                             f"{' '.join(map(str, seeds))}` first.")
        fp32[e.key] = [r for r in recs if r is not None]
        if any("bf16" in (r.box_precision, r.synthesis_precision) for r in fp32[e.key]):
            raise BenchError(f"{e.key}: the bench's records ran in bf16, so they cannot be the fp32 side. "
                             f"Make fp32 ones in another folder: "
                             f"`python -m labkit bench --profile {prof.name} --only {e.key} --set "
                             f"{e.key}.precision=fp32 --out-dir DIR`, then pass --out-dir DIR here.")
    record_dir = study_dir(PRECISION, prof.name, dataset, out_dir)
    plan = plan_bench(dataset, prof.name, seeds, record_dir, entries=[e.key for e in entries],
                      overrides={e.key: {"precision": "bf16"} for e in entries}, force=force, log=log)
    runs = execute_bench(plan, device="cpu", progress=progress, jobs=jobs, threads_per_job=threads_per_job, log=log)
    table = [compare_precision(e.key, fp32[e.key], runs.done[e.key]) for e in entries]
    for other in get_entries([r for r in PRECISION_ROWS if r not in {e.key for e in entries}]):
        pair = [[load_saved_run(record_path(d, other.key, s), other.key, prof.name, dataset, s, o) for s in seeds]
                for d, o in ((bench_dir, other.option_dict()), (record_dir, {**other.option_dict(),
                                                                              "precision": "bf16"}))]
        if all(r is not None for side in pair for r in side):  # a row run by an earlier call joins the table
            table.append(compare_precision(other.key, *[[r for r in side if r is not None] for side in pair]))
    order = {k: i for i, k in enumerate(PRECISION_ROWS)}
    table.sort(key=lambda r: order.get(r.key, len(order)))
    env = environment_info(torch.device("cpu"), "")
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / "precision.json").write_text(json.dumps(
        {"profile": prof.name, "dataset": dataset, "seeds": list(seeds), "environment": env,
         "rows": [{**asdict(r), "default_candidate": r.default_candidate} for r in table]}, indent=2) + "\n")
    (record_dir / "precision.md").write_text(precision_markdown(table, prof.name, dataset, env))
    say(f"[precision] wrote {record_dir / 'precision.md'}")
    return table
