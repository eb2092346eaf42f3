"""Estimate against measurement: ``python -m labkit cost-check`` and ``make gpu-check``.

It runs bench rows (or each notebook's main run) one at a time and writes the cost model's estimate beside each run's
measured seconds (``results/cost/<profile>.md`` and ``.json``). ``make gpu-check`` is this on the ``gpu`` profile for
every notebook's main run."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from labkit.core import paths
from labkit.core.data import canonical_name, dataset_info
from labkit.core.device import cpu_summary, pick_device
from labkit.core.teachers import default_teacher_arch
from labkit.methods.base import get_method
from labkit.studies.bench_rows import BENCH_ENTRIES
from labkit.studies.cost import Calibrator, device_label, estimate_run
from labkit.studies.main_runs import notebook_main_runs
from labkit.studies.runner import run_method

#: the bar: an estimate within this share of the measured seconds
TOLERANCE = 0.25


def planned_runs(rows: list[str] | None, notebooks: bool,
                 profile: str = "laptop") -> list[tuple[str, str, dict[str, Any], str, str]]:
    """(label, method, options, teacher, student) of the bench rows asked for, or of the main runs on ``profile`` of
    the notebooks asked for (every notebook's when ``rows`` is None)."""
    if notebooks:
        main = notebook_main_runs(profile)
        unknown = set(rows or ()) - set(main)
        if unknown:
            raise SystemExit(f"unknown notebooks {sorted(unknown)}; with --notebooks, --rows takes {sorted(main)}")
        return [(f"{nb}: {name}", name, dict(opts), "", "")
                for nb, runs in main.items() if rows is None or nb in rows for name, opts in runs]
    chosen = [e for e in BENCH_ENTRIES if rows is None or e.key in rows]
    unknown = set(rows or ()) - {e.key for e in BENCH_ENTRIES}
    if unknown:
        raise SystemExit(f"unknown bench rows {sorted(unknown)}; python -m labkit bench --list names them")
    return [(e.key, e.method, e.option_dict(), e.teacher, e.student) for e in chosen]


def smoke_sized(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """A row's options for a smoke run: a stream length or an epoch count sized for a larger profile (MEKD's
    ``transfer_size``, ``zskd-paper-augmented``'s ``epochs``) held to the smoke profile's; no code path changes."""
    smoke = get_method(method).config_class.for_profile("smoke")
    return {**options, **{k: min(v, getattr(smoke, k)) for k, v in options.items() if k in ("transfer_size", "epochs")}}


def cost_check(rows: list[str] | None = None, *, profile: str = "laptop", seed: int = 0, notebooks: bool = False,
               out_dir: Path | None = None, fresh: bool = True, warm_up: bool = True) -> list[dict[str, Any]]:
    """Estimate each run just before it runs, then run it; one at a time; write and return rows.

    ``fresh`` calibrates every kind a row needs again right before the row (and updates the cache): a shared
    machine's speed drifts by tens of percent over hours (docs/cost.md), and this checks the model, not the drift.
    ``warm_up`` first runs the first row once at the smoke profile, unrecorded: a process's first run pays for
    imports, the data's first load and the allocator's first growth, which no later run (nor the estimate) does.
    """
    plan = planned_runs(rows, notebooks, profile)
    if warm_up and plan:
        _, method, options, teacher, student = plan[0]
        run_method(method, profile="smoke", seed=seed, progress=False, teacher_arch=teacher or None,
                   student_arch=student or None, **smoke_sized(method, options))
    out: list[dict[str, Any]] = []
    for label, method, options, teacher, student in plan:
        dataset = canonical_name(options.get("dataset", "fashion-mnist"))
        cal = Calibrator(dataset_info(dataset), teacher or default_teacher_arch(dataset), refresh=fresh)
        est = estimate_run(method, profile=profile, teacher_arch=teacher or None, student_arch=student or None,
                           calibrator=cal, **options)
        t0 = time.perf_counter()
        rec = run_method(method, profile=profile, seed=seed, progress=False, teacher_arch=teacher or None,
                         student_arch=student or None, **options).record
        measured = rec.wall_s
        out.append({"row": label, "method": rec.method, "estimate_s": est.total_s, "estimate_method_s": est.method_s,
                    "estimate_student_s": est.student_s, "measured_s": measured, "measured_method_s": rec.method_s,
                    "measured_student_s": rec.student_s, "ratio": round(est.total_s / measured, 3),
                    "within": abs(est.total_s / measured - 1) <= TOLERANCE,
                    "elapsed_s": round(time.perf_counter() - t0, 1),
                    "load": " ".join(f"{v:.2f}" for v in os.getloadavg()), "queries": rec.queries})
        print(f"{label}: estimate {est.total_s:.0f} s, measured {measured:.0f} s ({out[-1]['ratio']:.2f}x)", flush=True)
        write(out, out_dir or paths.results_dir() / "cost", profile, seed)  # after every run: a stop keeps the rest
    return out


def re_estimate(*, profile: str = "laptop", out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Estimate again every run already measured in ``<profile>.json`` (after a change to the model or a fresh
    calibration), keep its measured seconds, and rewrite the table. Runs nothing."""
    target = out_dir or paths.results_dir() / "cost"
    path = target / f"{profile}.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run python -m labkit cost-check --profile {profile} first")
    data = json.loads(path.read_text())
    runs = {label: (m, o, t, s) for label, m, o, t, s in planned_runs(None, False) + planned_runs(None, True, profile)}
    out = []
    for row in data["rows"]:
        method, options, teacher, student = runs[row["row"]]
        est = estimate_run(method, profile=profile, teacher_arch=teacher or None, student_arch=student or None,
                           **options)
        ratio = est.total_s / row["measured_s"]
        out.append({**row, "estimate_s": est.total_s, "estimate_method_s": est.method_s,
                    "estimate_student_s": est.student_s, "ratio": round(ratio, 3),
                    "within": abs(ratio - 1) <= TOLERANCE})
    write(out, target, profile, int(data.get("seed", 0)))
    return out


def write(rows: list[dict[str, Any]], out_dir: Path, profile: str, seed: int) -> tuple[Path, Path]:
    """``<profile>.json`` and a Markdown table ``<profile>.md`` (rows already there and not re-run are kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out_dir / f"{profile}.json", out_dir / f"{profile}.md"
    old = json.loads(jpath.read_text())["rows"] if jpath.exists() else []
    merged = {r["row"]: r for r in old} | {r["row"]: r for r in rows}
    meta = {"profile": profile, "seed": seed, "device": device_label(pick_device()), "cpu": cpu_summary(),
            "torch": torch.__version__, "tolerance": TOLERANCE}
    jpath.write_text(json.dumps({**meta, "rows": list(merged.values())}, indent=1) + "\n")
    lines = [f"# Estimate against measurement: {profile} profile", "",
             f"{meta['device']}, {meta['cpu']}, torch {meta['torch']}, seed {seed}, one run at a time. Estimate = the "
             "cost model just before the run, calibrated afresh (`python -m labkit run NAME --estimate`); measured = "
             "the record's `wall_s` "
             "(the method and the student's training). `python -m labkit cost-check` writes this table; "
             "`docs/cost.md` reads it.", "",
             "| row | estimate s (method + student) | measured s (method + student) | estimate / measured "
             "| within ±25 % |",
             "|---|---:|---:|---:|:---:|"]
    for r in merged.values():
        lines.append(f"| {r['row']} | {r['estimate_s']:.0f} ({r['estimate_method_s']:.0f} + "
                     f"{r['estimate_student_s']:.0f}) | {r['measured_s']:.0f} ({r['measured_method_s']:.0f} + "
                     f"{r['measured_student_s']:.0f}) | {r['ratio']:.2f} | {'yes' if r['within'] else '**no**'} |")
    inside = sum(r["within"] for r in merged.values())
    lines += ["", f"{inside} of {len(merged)} rows within ±25 %."]
    mpath.write_text("\n".join(lines) + "\n")
    return jpath, mpath
