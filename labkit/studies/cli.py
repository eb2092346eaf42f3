"""Command line: ``python -m labkit COMMAND ...``: run, methods, profiles, bench, cost-check, paper-check, paper-table,
few-labels, query-speed, speed, precision, scale, teacher, data, lab."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from labkit.core import paths
from labkit.core.errors import LabkitError
from labkit.core.profiles import PROFILES, default_profile_name


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist",
                   help="fashion-mnist (default), mnist, cifar10, toy2d-<family>-<k>")
    p.add_argument("--profile", default=None,
                   help=f"smoke | laptop | paper (default: $LABKIT_PROFILE or {default_profile_name()})")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _cmd_data(args: argparse.Namespace) -> int:
    from labkit.core.data import fetch

    where = fetch(args.name, args.root)
    print(f"{args.name}: available from {where}")
    return 0


def _cmd_teacher(args: argparse.Namespace) -> int:
    from labkit.core.teachers import get_teacher, read_manifest

    if args.teacher_cmd == "list":
        for key, entry in sorted(read_manifest().items()):
            print(f"{key}: test {100 * float(entry['test_acc']):.2f}%  val {100 * float(entry['val_acc']):.2f}%  "
                  f"sha256 {str(entry['sha256'])[:12]}…")
        return 0
    t = get_teacher(args.dataset, args.arch, seed=args.seed, epochs=args.epochs, device=args.device,
                    retrain=args.retrain, progress=not args.no_progress)
    print(f"teacher {t.spec.arch} on {t.spec.dataset} ({t.source}): test {100 * t.test_acc:.2f}%, "
          f"val {100 * t.val_acc:.2f}%  ->  {t.path}")
    return 0


def _set_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (``--threads`` of ``run`` and ``bench``); None or 0 leaves torch's choice."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _cmd_run(args: argparse.Namespace) -> int:
    from labkit.core.results import format_table, save_records
    from labkit.methods.base import get_method
    from labkit.studies.runner import run_method

    _set_threads(args.threads)
    cls = get_method(args.method)
    own = {a: getattr(args, a) for a in getattr(args, "_method_opts", [])}
    names = list(cls.companions) + [cls.name]
    records = []
    for name in names:
        shared = ("epochs", "lr", "response")  # a companion baseline follows the method's recipe and answers
        opts = own if name == cls.name else {k: v for k, v in own.items() if k in shared and k in
                                             get_method(name).config_class.field_names()}
        if args.estimate:  # the cost model's prediction, nothing run
            est = run_method(name, dataset=args.dataset, profile=args.profile, device=args.device,
                             teacher_arch=args.teacher_arch, student_arch=args.student_arch, dry_run=True, **opts)
            print(est.table(), flush=True)
            continue
        run = run_method(name, dataset=args.dataset, profile=args.profile, seed=args.seed, device=args.device,
                         teacher_arch=args.teacher_arch, student_arch=args.student_arch, budget=args.budget,
                         progress=not args.no_progress, precision=args.precision, **opts)
        records.append(run.record)
        print(f"{name}: student {100 * run.record.student_acc:.2f}%  ({run.record.wall_s:.1f} s, "
              f"{run.record.queries:,} queries)", flush=True)
    if args.estimate:
        return 0
    print()
    print(format_table(records))
    out = Path(args.out) if args.out else paths.results_dir() / f"{cls.name}.json"
    save_records(records, out)
    print(f"\nwrote {len(records)} record(s) to {out}")
    return 0


def _cmd_cost_check(args: argparse.Namespace) -> int:
    from labkit.studies.cost_check import cost_check, re_estimate

    _set_threads(args.threads)
    out_dir = Path(args.out_dir) if args.out_dir else None
    if args.estimate_only:
        rows = re_estimate(profile=args.profile, out_dir=out_dir)
    else:
        rows = cost_check(args.rows, profile=args.profile, seed=args.seed, notebooks=args.notebooks, out_dir=out_dir,
                          fresh=not args.cached, warm_up=not args.no_warm_up)
    inside = sum(r["within"] for r in rows)
    print(f"{inside} of {len(rows)} runs within ±25 % of their estimate")
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    for p in PROFILES.values():
        mark = "*" if p.name == default_profile_name() else " "
        print(f"{mark} {p.name:<7} {p.description}")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from labkit.methods.base import available_methods, get_method

    for name in available_methods():  # every registered method (registration happens on import of labkit.methods)
        cls = get_method(name)
        print(f"  {name:<9} access={cls.access:<9} data={cls.data_access:<10} {cls.summary}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from labkit.studies.bench import parse_overrides, run_bench

    _set_threads(args.threads)
    if args.estimate:
        return _bench_estimate(args)
    board = run_bench(args.dataset, args.profile, args.seeds, entries=args.only, out_dir=args.out_dir, force=args.force,
                      overrides=parse_overrides(args.set or []),
                      time_budget_s=args.time_budget, device=args.device, progress=not args.no_progress,
                      note=args.note or "", jobs=args.jobs, threads_per_job=args.threads)
    print()
    print(board.to_markdown())
    return 0


def _bench_estimate(args: argparse.Namespace) -> int:
    """``bench --estimate``: each row's estimate and the bench's, nothing run."""
    import torch

    from labkit.core.device import pick_device
    from labkit.core.profiles import get_profile
    from labkit.studies.bench import describe_bench_plan, estimate_plan, parse_overrides, plan_bench
    from labkit.studies.results_layout import BENCH, study_dir

    profile = get_profile(args.profile).name
    plan = plan_bench(args.dataset, profile, args.seeds, study_dir(BENCH, profile, args.dataset, args.out_dir),
                      entries=args.only, overrides=parse_overrides(args.set or []), force=args.force, log=None)
    dev = torch.device(args.device) if args.device else pick_device()
    per_run = estimate_plan(plan, dev)
    for e in plan.entries:
        runs = sum(1 for _, t, _ in plan.todo if t.key == e.key)
        cost = "no estimate" if per_run.get(e.key) is None else f"{per_run[e.key]:.0f} s a run"
        print(f"{e.key}: " + (f"{runs} to run, {cost}" if runs else "saved runs reused"))
    print(describe_bench_plan(plan, per_run, dev, args.jobs) + " (estimate; nothing ran)")
    return 0


def _cmd_precision(args: argparse.Namespace) -> int:
    from labkit.studies.precision import run_precision_study

    _set_threads(args.threads)
    run_precision_study(args.rows, args.seeds, profile=args.profile, dataset=args.dataset, out_dir=args.out_dir,
                        jobs=args.jobs, threads_per_job=args.threads, force=args.force)
    return 0


def _cmd_scale(args: argparse.Namespace) -> int:
    from labkit.studies.scale import describe_plan, parse_grid, plan_scale_study, point_key, run_scale_study

    _set_threads(args.threads)
    if args.estimate:
        plan = plan_scale_study(args.row, parse_grid(args.grid), args.seeds, profile=args.profile,
                                dataset=args.dataset, out_dir=args.out_dir, force=args.force)
        for r in plan:
            cost = "saved: reused" if r.reuse else "no estimate" if r.estimate_s is None else f"{r.estimate_s:.0f} s"
            print(f"{point_key(r.point)} seed {r.seed}: {cost}")
        print(describe_plan(args.row, plan) + " (estimate; nothing ran)")
        return 0
    points = run_scale_study(args.row, parse_grid(args.grid), args.seeds, profile=args.profile, dataset=args.dataset,
                             out_dir=args.out_dir, force=args.force, max_minutes=args.max_minutes)
    for p in points:
        print(f"{p.key}: validation {100 * p.val[0]:.2f} ± {100 * p.val[1]:.2f}%, test {100 * p.test[0]:.2f} ± "
              f"{100 * p.test[1]:.2f}%, {p.queries:,.0f} teacher passes")
    return 0


def _add_study_options(p: argparse.ArgumentParser, seeds: list[int], force_help: str) -> None:
    """The options the precision and scale studies share: seeds, profile, data set, results folder, threads, force."""
    p.add_argument("--seeds", type=int, nargs="+", default=seeds, help=f"seeds (default {' '.join(map(str, seeds))})")
    p.add_argument("--profile", default="laptop", help="smoke | laptop | paper (default laptop)")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: torch's choice)")
    p.add_argument("--force", action="store_true", help=force_help)


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    from labkit.studies.bench import BENCH_KEYS

    p = sub.add_parser("bench", help="run every method on one teacher: the leaderboard",
                       description="Run every method (or --only some) for each seed on the same teacher and student; "
                                   "save each run as it finishes "
                                   "(<out-dir>/bench/<profile>/<dataset>/<entry>-seed<k>.json, reused on the next "
                                   "call unless --force), then write leaderboard.json and leaderboard.md beside the "
                                   "runs.")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--profile", default=None,
                   help=f"smoke | laptop | paper (default: $LABKIT_PROFILE or {default_profile_name()})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run, e.g. --seeds 0 1 2 (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.add_argument("--only", nargs="+", default=None, metavar="ENTRY", help=f"entries to run: {', '.join(BENCH_KEYS)}")
    p.add_argument("--force", action="store_true", help="re-run entries even if a matching saved run exists")
    p.add_argument("--set", action="append", metavar="ENTRY.OPTION=VALUE",
                   help="override one option of one entry, e.g. --set db3kd-paper.queries-per-sample=500 (repeatable)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start a run only if its cost-model estimate fits the seconds left, skip the rest (default: "
                        "run everything)")
    p.add_argument("--estimate", action="store_true",
                   help="print each row's estimate (the cost model's, on this device) and the bench's; run nothing")
    p.add_argument("--note", default=None, help="a note stored with the machine info, e.g. 'shared 2-core CPU'")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per run (default: torch's choice, or cores / jobs with --jobs)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once in worker processes (default 1); e.g. --jobs 2 --threads 1 on 2 cores")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_bench)


def _cmd_query_speed(args: argparse.Namespace) -> int:
    from labkit.core.data import dataset_info, load_dataset
    from labkit.core.teachers import get_teacher
    from labkit.studies.query_speed import box_throughput, zsdb3kd_calls

    _set_threads(args.threads)
    info = dataset_info(args.dataset)
    teacher = get_teacher(args.dataset, device=args.device or "cpu", progress=False)
    x = load_dataset(args.dataset, "train", limit=args.images, seed=0, device=args.device or "cpu").x
    print(f"box against a raw no_grad forward, {x.shape[0]:,} images, best of {args.repeats}:")
    for batch in args.batch_sizes:
        for access in ("decision", "score"):
            t = box_throughput(teacher.model, x, batch, access, info.num_classes, repeats=args.repeats)
            print(f"  batch {batch:>6} {access:>8}: box {t.box_per_s:>9,.0f} img/s, raw {t.raw_per_s:>9,.0f} img/s, "
                  f"ratio {t.ratio:.3f}")
    c = zsdb3kd_calls(teacher.model, info, args.profile or "laptop", args.iterations,
                      device=args.device or "cpu")
    print(f"ZSDB3KD ({args.profile or 'laptop'} sizes, {c.pseudo_samples} pseudo-samples, {c.iterations} iterations, "
          f"{c.seconds:.1f} s): {c.calls_per_iteration:,.0f} calls per iteration")
    for phase, calls in c.calls.items():
        print(f"  {phase:>16}: {calls:>7,} calls, {c.queries[phase]:>10,} queries, {c.queries[phase] / calls:,.1f} "
              "per call")
    return 0


def _cmd_speed(args: argparse.Namespace) -> int:
    from labkit.studies.speed import DEFAULT_OPTIONS, parse_options, run_speed, write_record

    options = args.options or [parse_options(spec) for spec in DEFAULT_OPTIONS]
    record = run_speed(options, args.loops, threads_n=args.threads, repeats=args.repeats,
                       progress=lambda r: print(f"  {r.loop:>16} {r.options:<24} {r.images_per_s:>9,.0f} img/s "
                                                f"{r.gflops:6.2f} GFLOP/s {100 * r.peak_share:5.1f}% of peak",
                                                flush=True))
    out = Path(args.out_dir) if args.out_dir else paths.results_dir() / "speed"
    js, md = write_record(record, out / str(record.machine["slug"]))
    print(md.read_text())
    print(f"wrote {js} and {md}")
    return 0


def _cmd_paper_check(args: argparse.Namespace) -> int:
    from labkit.studies.paper_check import run_paper_check

    _set_threads(args.threads)
    check = run_paper_check(args.dataset, scale=args.scale, out_dir=args.out_dir, device=args.device,
                            seeds=args.seeds, budget_s=args.time_budget, only=args.only, allow_cpu=args.allow_cpu,
                            progress=not args.no_progress)
    print(check.table.read_text())
    for key, sec in check.seconds.items():
        print(f"  {key:>20}: {'skipped (budget used up)' if sec is None else f'{sec:.1f} s'}")
    print(f"records in {check.results}, table {check.table}")
    return 0


def _cmd_few_labels(args: argparse.Namespace) -> int:
    from labkit.studies.few_labels import run_few_labels

    _set_threads(args.threads)
    points = run_few_labels(args.sizes, args.seeds, profile=args.profile or "laptop", dataset=args.dataset,
                            out_dir=args.out_dir, force=args.force, progress=not args.no_progress)
    for p in points:
        print(f"  {p.row:>8} n={p.size:>6,}: test {100 * p.mean:.2f} ± {100 * p.std:.2f}% over {len(p.accs)} seeds, "
              f"{p.queries:,} queries, {p.epochs} epochs")
    return 0


def _cmd_paper_table(args: argparse.Namespace) -> int:
    from labkit.studies.paper_table import write_paper_table

    out = write_paper_table(args.dataset, args.out_dir, note=args.note or "")
    print(out.read_text())
    print(f"wrote {out}")
    return 0


def lab_command(notebook_dir: str = "notebooks", uid: int | None = None, has_display: bool | None = None,
                extra: Sequence[str] = ()) -> list[str]:
    """The JupyterLab command ``make lab`` runs (``python -m labkit lab``): ``--allow-root`` when the user id is 0
    (JupyterLab refuses root without it) and ``--no-browser`` where there is no display to open a browser on.
    ``uid`` and ``has_display`` default to this process's user and environment; ``extra`` is appended as is."""
    if uid is None:
        uid = os.geteuid() if hasattr(os, "geteuid") else 1
    if has_display is None:
        has_display = sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY")
                                                                   or os.environ.get("WAYLAND_DISPLAY"))
    return ([sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}"] + (["--allow-root"] if uid == 0
            else []) + ([] if has_display else ["--no-browser"]) + list(extra))


def _cmd_lab(args: argparse.Namespace) -> int:
    extra = [f"--{flag}={value}" for flag, value in (("port", args.port), ("ip", args.ip),
                                                     ("ServerApp.token", args.token)) if value is not None]
    cmd = lab_command(args.notebook_dir, extra=extra)
    print(shlex.join(cmd), flush=True)
    if args.print_command:
        return 0
    os.execv(cmd[0], cmd)  # JupyterLab replaces this process: Ctrl-C and a terminate reach it directly
    return 0  # pragma: no cover - execv does not return


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="python -m labkit", description="The black-box distillation lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("data", help="data sets", description="Make a data set available.")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    f = dsub.add_parser("fetch", help="find or download a data set",
                        description="Look in $LABKIT_DATA / data/, then /usr/share/datasets (Fashion-MNIST), "
                                    "then download.")
    f.add_argument("name", help="fashion-mnist, mnist or cifar10")
    f.add_argument("--root", default=None, help="data directory (default: $LABKIT_DATA or data/)")
    f.set_defaults(func=_cmd_data)

    p = sub.add_parser("teacher", help="teacher checkpoints", description="Train, load or list cached teachers.")
    tsub = p.add_subparsers(dest="teacher_cmd", required=True)
    t = tsub.add_parser("train", help="load the cached teacher, or train and cache it",
                        description="Loads the teacher if its checkpoint's sha256 matches the manifest, "
                                    "else trains it.")
    _add_common(t)
    t.add_argument("--arch", default=None, help="architecture (default: the data set's lab teacher)")
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default: the lab recipe)")
    t.add_argument("--retrain", action="store_true", help="train even if a valid checkpoint exists")
    t.set_defaults(func=_cmd_teacher)
    tl = tsub.add_parser("list", help="list cached teachers")
    tl.set_defaults(func=_cmd_teacher)

    p = sub.add_parser("run", help="run a distillation method", description="Run a method and write result records.")
    msub = p.add_subparsers(dest="method", required=True, metavar="METHOD")
    from labkit.methods.base import available_methods, get_method

    for name in available_methods():
        cls = get_method(name)
        # argparse formats help with %, so a literal "10%" in a summary must be escaped
        mp = msub.add_parser(name, help=cls.summary.replace("%", "%%"),
                             description=(cls.__doc__ or cls.summary).strip().replace("%", "%%"))
        _add_common(mp)
        mp.add_argument("--teacher-arch", default=None, help="teacher architecture (default: the data set's)")
        mp.add_argument("--student-arch", default=None, help="student architecture (default: the data set's)")
        mp.add_argument("--budget", type=int, default=None, help="hard cap on teacher queries")
        mp.add_argument("--out", default=None, help="where to write the JSON records (default results/<method>.json)")
        mp.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
        mp.add_argument("--estimate", action="store_true",
                        help="print the cost model's time estimate per phase on this device and run nothing "
                             "(docs/cost.md)")
        mp.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="auto (fp32 on the CPU, a bf16 box on CUDA), fp32, or bf16 for the box and the synthesis "
                             "loops (CPUs with AVX512-BF16 or AMX; docs/speed.md)")
        before = {a.dest for a in mp._actions}
        cls.add_arguments(mp)
        mp.set_defaults(func=_cmd_run, _method_opts=[a.dest for a in mp._actions if a.dest not in before])

    p = sub.add_parser("cost-check", help="the cost model's estimate beside measured runs (results/cost/)",
                       description="Estimate, then run one at a time, bench rows or every notebook's main run, and "
                                   "write estimate against measured seconds to results/cost/<profile>.md. Run it on an "
                                   "idle machine.")
    p.add_argument("--profile", default="laptop", help="profile of the runs (default laptop)")
    p.add_argument("--rows", nargs="+", default=None,
                   help="bench rows, or notebooks with --notebooks, e.g. 03_db3kd (default: every one)")
    p.add_argument("--notebooks", action="store_true", help="every notebook's main run instead of bench rows")
    p.add_argument("--estimate-only", action="store_true",
                   help="estimate again the runs already measured in results/cost/<profile>.json; run nothing")
    p.add_argument("--cached", action="store_true",
                   help="estimate from the cached calibration (default: calibrate afresh just before each run)")
    p.add_argument("--no-warm-up", action="store_true",
                   help="measure the first row cold (default: one unrecorded smoke run of it first)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out-dir", default=None, help="where to write (default results/cost)")
    p.set_defaults(func=_cmd_cost_check)
    p = sub.add_parser("profiles", help="list the size profiles")
    p.set_defaults(func=_cmd_profiles)
    p = sub.add_parser("methods", help="list the methods")
    p.set_defaults(func=_cmd_methods)
    _add_bench_parser(sub)
    p = sub.add_parser("query-speed", help="box throughput against a raw forward, and ZSDB3KD's calls per iteration",
                       description="Time the black box against a raw no_grad forward of the teacher on the same "
                                   "batches, and count ZSDB3KD's box calls per phase for a few iterations. Run it on "
                                   "an idle machine.")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--profile", default=None, help="ZSDB3KD's sizes for the call count (default laptop)")
    p.add_argument("--images", type=int, default=20_000, help="training images timed (default 20000)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096, 20_000], help="batch sizes to time")
    p.add_argument("--iterations", type=int, default=2, help="ZSDB3KD iterations counted (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timings per batch size; the best counts (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=_cmd_query_speed)
    p = sub.add_parser("speed", help="each inner loop's img/s and FLOP/s against this CPU's peak",
                       description="Time every inner loop (box forward, impression step, Sign-OPT probe round, MEKD's "
                                   "and IDEAL's generator steps, CVAE step, student step) on the lab's models at the "
                                   "laptop batch sizes, count FLOPs from MACs, and compare with the fp32 peak derived "
                                   "from this CPU; write <out-dir>/speed/<machine>/speed.json and speed.md. Run it on "
                                   "an idle machine (about a minute per option set).")
    from labkit.studies.speed import LOOP_NAMES, SWITCHES, parse_options

    p.add_argument("--options", nargs="+", default=None, metavar="SPEC", type=parse_options,
                   help="option sets to time, each fp32-nchw (the code before the speed-ups) or switches joined by "
                        "+: " + ", ".join(SWITCHES) + ", box_chunk=N, LOOP=BATCH (default: "
                        "fp32-nchw, the lab's defaults, and those with the compiled box; see docs/speed.md)")
    p.add_argument("--loops", nargs="+", default=None, choices=LOOP_NAMES, help="a subset of the loops (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after warm-up; the best counts (default 5)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.set_defaults(func=_cmd_speed)
    from labkit.studies.precision import PRECISION_ROWS

    p = sub.add_parser("precision", help="bf16 against fp32 per method: accuracy over seeds and time",
                       description="Run one bench row per method again at precision bf16 and compare it with the "
                                   "bench's fp32 records of the same seeds (which must exist); write "
                                   "<out-dir>/precision/<profile>/<dataset>/precision.md and .json. bf16 is a default "
                                   "candidate only where it stays within one fp32 std and is faster.")
    p.add_argument("--rows", nargs="+", default=list(PRECISION_ROWS), metavar="ROW",
                   help=f"bench rows (default: {' '.join(PRECISION_ROWS)})")
    _add_study_options(p, [0, 1, 2], "re-run bf16 runs that are already saved")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1); the bench's --jobs 2 --threads 1 "
                                                       "on 2 cores compares like with like")
    p.set_defaults(func=_cmd_precision)
    p = sub.add_parser("scale", help="a scaling study: one bench row over a grid of its budget knobs",
                       description="Run a bench row at every point of a grid of its options for each seed (records in "
                                   "<out-dir>/scale/<profile>/<dataset>/<row>/, reused unless --force), with the "
                                   "student's accuracy on the labelled validation split; write <row>.json, .md and "
                                   ".png (test accuracy against teacher passes, the paper's point and the bench's "
                                   "laptop row marked). The lab chooses its settings on the validation split.")
    p.add_argument("row", help="a bench row, e.g. zskd-paper")
    p.add_argument("--grid", nargs="+", required=True, metavar="OPTION=V1,V2",
                   help="grid axes, e.g. --grid impressions=2000,4000 iterations=100,400")
    _add_study_options(p, [0], "re-run grid points that are already saved")
    p.add_argument("--estimate", action="store_true",
                   help="print each run's estimate (the cost model's, on this device) and the study's; run nothing")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="refuse, before anything runs, a study estimated longer than this (default: no limit)")
    p.set_defaults(func=_cmd_scale)
    p = sub.add_parser("paper-check", help="the paper profile of every method on one GPU in ~10 min, then the table",
                       description="Run every paper row at the paper profile (a stated fraction where the full size "
                                   "does not fit ten minutes on one GPU; the record says so), save the records in "
                                   "<out-dir>/paper-check/paper/<dataset>/ and write the paper table beside them "
                                   "(leaderboard.md). --scale tiny runs the same plan at a few images on the CPU (the "
                                   "plumbing check CI runs).")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--scale", default="gpu", help="gpu (default: the paper profile, fractions where stated) or tiny")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    p.add_argument("--time-budget", type=float, default=600.0,
                   help="seconds; a row starts only if its cost-model estimate fits what is left, and rows still "
                        "waiting after it are skipped (default 600)")
    p.add_argument("--only", nargs="+", default=None, help="a subset of the paper rows")
    p.add_argument("--allow-cpu", action="store_true", help="run the GPU sizes on the CPU anyway (hours)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_paper_check)
    p = sub.add_parser("few-labels", help="student alone against plain KD on a few labelled images (notebook 01)",
                       description="Run the student and kd rows on seeded, class-balanced subsets of the training "
                                   "split (epochs scaled so every size sees about 120,000 images; epoch chosen on the "
                                   "validation split) and save one record per row, size and seed in "
                                   "<out-dir>/few-labels/<profile>/<dataset>/n<size>/.")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--profile", default=None, help="size profile (default laptop)")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000], help="labelled images per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.add_argument("--force", action="store_true", help="re-run records that are already saved")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_few_labels)
    p = sub.add_parser("paper-table", help="the paper-profile records beside the papers' figures",
                       description="Read <out-dir>/paper-check/paper/<dataset>/*.json (the paper-profile runs) and "
                                   "write the paper table beside them (leaderboard.md): each measured row beside the "
                                   "paper's reported figure and the gap, then the rows not measured yet and why.")
    p.add_argument("--dataset", default="fashion-mnist", help="data set (default fashion-mnist)")
    p.add_argument("--out-dir", default=None, help="the results folder (default: $LABKIT_RESULTS or results/)")
    p.add_argument("--note", default=None, help="a line under the title, e.g. where and how the runs were made")
    p.set_defaults(func=_cmd_paper_table)
    p = sub.add_parser("lab", help="open JupyterLab on notebooks/ (what `make lab` runs)",
                       description="Start JupyterLab on the notebooks, adding --allow-root when the user is root and "
                                   "--no-browser where there is no display.")
    p.add_argument("--notebook-dir", default="notebooks", help="the folder JupyterLab opens (default notebooks)")
    p.add_argument("--port", type=int, default=None, help="the port (default: JupyterLab's, 8888 or the next free)")
    p.add_argument("--ip", default=None, help="the address to listen on (default: JupyterLab's, localhost)")
    p.add_argument("--token", default=None, help="the access token (default: JupyterLab makes one and prints it)")
    p.add_argument("--print-command", action="store_true", help="print the jupyter command and exit")
    p.set_defaults(func=_cmd_lab)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; lab errors print one clear message and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LabkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
