"""``make paper-check``: the paper profile of every method on one GPU, in about ten minutes, then the paper table.

Every paper row of :data:`labkit.studies.paper_table.PAPER_ROWS` is run once (seed 0 by default) at the ``paper``
profile through the bench's plan and runs (:func:`labkit.studies.bench.plan_bench`,
:func:`~labkit.studies.bench.execute_bench`), so its records land in
``<results>/paper-check/paper/<dataset>/<row>-seed<s>.json``, and
:func:`labkit.studies.paper_table.write_paper_table` then writes the paper table beside them (``leaderboard.md``).

Where a method's full paper size does not fit the ten minutes, :data:`CHECK_PLAN` runs a stated fraction of it
(``scaled``: which fields, from what to what) and the record says so in ``paper_fraction``; the paper table prints
the fraction beside the accuracy. The fractions are estimates made before any GPU run (the lab's machines had
none when this was written); a GPU session that measures the real times should adjust them in one place, here.

``scale="tiny"`` runs the same plan through the same code at a few images per method on the CPU (the CI test), so
the one GPU run does not fail on a typo. Its records say ``"scale": "tiny"`` and mean nothing as figures.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labkit.core.data import canonical_name
from labkit.core.errors import LabkitError, UnknownNameError
from labkit.studies.bench import execute_bench, get_entries, plan_bench, record_path
from labkit.studies.paper_table import PAPER_ROWS, paper_dir, write_paper_table

#: the default wall-clock budget of one paper check (the issue's "at most 10 minutes in all")
CHECK_BUDGET_S = 600.0
SCALES: tuple[str, ...] = ("gpu", "tiny")


class PaperCheckError(LabkitError, RuntimeError):
    """The paper check cannot run as asked (no GPU for the full scale, unknown row)."""


@dataclass(frozen=True)
class CheckItem:
    """One paper row of the check: its bench entry, what it changes at GPU scale (and why), its tiny sizes."""

    key: str
    #: fields changed from the paper profile on one GPU: {field: (paper value, value run)}
    scaled: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    fraction: float = 1.0  # the share of the paper's work the GPU run does (1.0: the full size)
    why: str = ""  # why the fraction, in words
    #: option overrides on the paper profile that are not a reduction (e.g. the paper's own measure)
    same_as_paper: dict[str, Any] = field(default_factory=dict)
    #: CPU plumbing sizes (scale="tiny"): config fields and the runner's ``train_limit``
    tiny: dict[str, Any] = field(default_factory=dict)

    def overrides(self, scale: str) -> dict[str, Any]:
        """The bench overrides of this row at ``scale`` (``gpu`` or ``tiny``), with the record's ``paper_fraction``."""
        opts: dict[str, Any] = dict(self.same_as_paper)
        if scale == "tiny":
            opts.update(self.tiny)
            opts["paper_fraction"] = {"scale": "tiny", "fraction": None,
                                      "why": "CPU plumbing check of make paper-check: a few images, not a figure"}
            return opts
        opts.update({name: run for name, (_, run) in self.scaled.items()})
        if self.fraction < 1.0:
            opts["paper_fraction"] = {"scale": "gpu", "fraction": self.fraction, "why": self.why,
                                      "scaled": {name: [full, run] for name, (full, run) in self.scaled.items()}}
        return opts


_TINY_STUDENT = {"epochs": 1, "batch_size": 64, "train_limit": 600}
#: The check, cheapest rows first, so that a run past the budget loses the most expensive rows only.
CHECK_PLAN: tuple[CheckItem, ...] = (
    CheckItem("student", tiny=_TINY_STUDENT),
    CheckItem("kd", tiny=_TINY_STUDENT),
    CheckItem("fsbbt", tiny={"shots": 40, "nomixup": 80, "cvae_epochs": 1, "epochs": 1, "batch_size": 32,
                             "train_limit": 600}),
    CheckItem("zskd-paper", tiny={"impressions": 40, "iterations": 3, "craft_batch": 40, "epochs": 1,
                                  "batch_size": 32}),
    CheckItem("mekd-soft-paper", tiny={"gan_epochs": 1, "epochs": 1, "transfer_size": 128, "holdout_size": 64,
                                       "g_width": 8, "d_width": 4, "batch_size": 64, "train_limit": 600}),
    CheckItem("mekd-hard-paper", tiny={"gan_epochs": 1, "epochs": 1, "transfer_size": 128, "holdout_size": 64,
                                       "g_width": 8, "d_width": 4, "batch_size": 64, "train_limit": 600}),
    # the paper's DB3KD is MBD at 2,000 queries per image over the whole training set: 110 M queries
    CheckItem("db3kd-paper", scaled={"train_size": (None, 5500)}, fraction=0.1,
              why="MBD at 2,000 queries per image on 10 % of the training images (11 M of the paper's 110 M "
                  "queries), estimated to fit the ten minutes beside the other rows",
              same_as_paper={"measure": "mbd"},
              tiny={"train_size": 40, "queries_per_sample": 60, "epochs": 1, "batch_size": 32, "train_limit": 600}),
    # 30,000 pseudo-samples x 40 iterations x ~5,000 Sign-OPT queries: up to 6e9 queries
    CheckItem("zsdb3kd-paper", scaled={"per_class": (3000, 300)}, fraction=0.1,
              why="300 of the paper's 3,000 pseudo-samples per class, every other size the paper's (40 iterations, "
                  "5,000 Sign-OPT queries per image and iteration, 200 soft-label rays per class): up to 6e8 queries",
              tiny={"per_class": 2, "iterations": 2, "n_directions": 2, "warm_directions": 1, "signopt_queries": 20,
                    "label_directions": 1, "n_probes": 4, "epochs": 1, "batch_size": 16, "init_batch": 4096,
                    "max_init_draws": 400_000, "curve_points": 0}),
    CheckItem("ideal", tiny={"queries": 120, "per_round": 60, "g_steps": 2, "nz": 8, "g_width": 4, "epochs": 1,
                             "batch_size": 32, "guide_batch": 32, "curve_points": 1}),
    CheckItem("zskd-authors-code", tiny={"impressions": 40, "iterations": 3, "craft_batch": 40, "epochs": 1,
                                         "batch_size": 32}),
)
assert tuple(sorted(i.key for i in CHECK_PLAN)) == tuple(sorted(PAPER_ROWS)), "every paper row is checked"


@dataclass
class PaperCheck:
    """What one check ran: the records' folder, the table, seconds per row (``None``: skipped) and the scale."""

    scale: str
    results: Path
    table: Path
    seconds: dict[str, float | None]
    device: str


def plan(only: Sequence[str] | None = None) -> list[CheckItem]:
    """The check's rows, in :data:`CHECK_PLAN`'s order (``only``: a subset by bench key)."""
    if only is None:
        return list(CHECK_PLAN)
    wanted = [e.key for e in get_entries(only)]  # unknown keys fail here with the list of valid ones
    missing = [k for k in wanted if k not in PAPER_ROWS]
    if missing:
        raise UnknownNameError("paper row", missing[0], PAPER_ROWS,
                               hint="paper-check runs the paper rows only; the lab's additions are laptop rows.")
    return [i for i in CHECK_PLAN if i.key in wanted]


def _keep_other_device_record(path: Path, device: torch.device) -> None:
    """A saved record of the same row and seed measured on another kind of device (the CPU runs) is kept beside,
    as ``<row>-seed<s>.<device>.json``, instead of being replaced; the paper table lists both."""
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text()).get("device", "")
    except (OSError, ValueError):
        return
    kind = str(saved).split(":")[0]
    if kind and kind != device.type:
        path.rename(path.with_name(f"{path.stem}.{kind}.json"))


def run_paper_check(dataset: str = "fashion-mnist", *, scale: str = "gpu", out_dir: str | Path | None = None,
                    device: torch.device | str | None = None, seeds: Sequence[int] = (0,),
                    budget_s: float = CHECK_BUDGET_S, only: Sequence[str] | None = None, allow_cpu: bool = False,
                    progress: bool = True, log: Callable[[str], None] | None = print) -> PaperCheck:
    """Run the paper check and write the paper table; see the module docstring.

    ``scale="gpu"`` wants a CUDA device (``allow_cpu`` runs it on the CPU anyway, for hours); ``"tiny"`` is the
    CPU plumbing check. A row starts only while its cost-model estimate fits the budget left; rows that do not, or
    that are still waiting when ``budget_s`` has passed, are skipped and reported as such.
    Every row is run afresh: a saved record of the same row and seed from the same kind of device is replaced, one
    from another kind (the CPU records, on a GPU) is kept beside it (:func:`_keep_other_device_record`).
    """
    if scale not in SCALES:
        raise UnknownNameError("paper-check scale", scale, SCALES)
    dev = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if scale == "gpu" and dev.type != "cuda" and not allow_cpu:
        raise PaperCheckError(
            "paper-check is sized for one GPU (about ten minutes there) and no CUDA device is in use here. "
            "Run `python -m labkit paper-check --scale tiny` to check the plumbing on the CPU, run it where a GPU is, "
            "or pass --allow-cpu to run the GPU sizes on the CPU anyway (hours).")
    dataset = canonical_name(dataset)
    items = plan(only)
    folder = paper_dir(dataset, out_dir)
    say = log or (lambda _msg: None)
    seconds: dict[str, float | None] = {}
    start = time.perf_counter()
    for item in items:
        left = budget_s - (time.perf_counter() - start)
        if left <= 0:
            seconds[item.key] = None
            say(f"[paper-check] {item.key}: skipped, the {budget_s:.0f} s budget is used up")
            continue
        for seed in seeds:
            _keep_other_device_record(record_path(folder, item.key, seed), dev)
        t0 = time.perf_counter()
        runs = plan_bench(dataset, "paper", seeds, folder, entries=[item.key],
                          overrides={item.key: item.overrides(scale)}, force=True, log=log)
        # a seed starts only if the cost model's estimate of it fits the budget left (docs/cost.md)
        done = execute_bench(runs, device=dev, progress=progress, log=log, time_budget_s=left)
        if not done.done.get(item.key):
            seconds[item.key] = None
            say(f"[paper-check] {item.key}: skipped, its estimate does not fit the {left:.0f} s left")
            continue
        seconds[item.key] = round(time.perf_counter() - t0, 1)
        say(f"[paper-check] {item.key}: {seconds[item.key]:.1f} s ({scale} scale, {dev})")
    ran = [k for k, s in seconds.items() if s is not None]
    note = (f"`make paper-check` ({scale} scale) on {dev}: {len(ran)} of {len(items)} rows in "
            f"{time.perf_counter() - start:.0f} s; seeds {', '.join(map(str, seeds))}.")
    if scale == "tiny":
        note += " Tiny sizes: a plumbing check, not figures."
    table = write_paper_table(dataset, out_dir, note=note)
    return PaperCheck(scale, folder, table, seconds, str(dev))
