"""The paper table: paper-profile measurements beside the figures the papers report, with the gap.

:func:`paper_table` reads the paper-profile records in ``<results>/paper-check/paper/<dataset>/`` (:func:`paper_dir`;
:mod:`labkit.studies.paper_check` writes them), summarises every entry over its seeds, puts the paper's reported
figure (:mod:`labkit.studies.paper_figures`) beside it, and lists the paper rows not measured yet with the reason
(:data:`NOT_MEASURED`). :func:`write_paper_table` writes the table beside the records, as ``leaderboard.md``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from labkit.core.data import canonical_name
from labkit.core.results import ResultRecord
from labkit.studies.board_stats import Stat, fmt_pct
from labkit.studies.paper_figures import primary_figure
from labkit.studies.results_layout import PAPER_CHECK, study_dir

#: The paper table's file name, beside the records it summarises.
PAPER_TABLE_MD = "leaderboard.md"

#: Why a paper row has no measurement yet (the paper profile at the authors' sizes), per bench entry.
NOT_MEASURED: dict[str, str] = {
    "db3kd-paper": "every training image soft-labelled by MBD at 2,000 queries each: about 110 million decision "
                   "queries; a GPU run (`make paper-check` runs 10 % of the images)",
    "zskd-paper": "48,000 impressions × 1,500 white-box Adam steps (72 million forward and backward passes): a GPU run "
                  "(`make paper-check`)",
    "zskd-authors-code": "the code's 40,000 impressions × 1,500 steps, then 500 epochs of 106 relabelled "
                         "augmentations per impression (about 2×10⁹ teacher and student passes): a GPU run "
                         "(`make paper-check`)",
    "zsdb3kd-paper": "30,000 pseudo-samples × 40 iterations × about 5,000 Sign-OPT queries (up to 6×10⁹ queries): "
                     "a GPU run (`make paper-check` runs 10 % of the pseudo-samples)",
    "mekd-soft-paper": "a width-128 GAN for 3,440 steps plus 40 epochs of 60,000 generated images through G: over "
                       "an hour per run on two CPU cores by the laptop GAN's 58 s for 344 steps at a quarter of the "
                       "width (an estimate; not attempted), so a GPU run (`make paper-check`)",
    "mekd-hard-paper": "as mekd-soft-paper: a GPU run (`make paper-check`)",
    "ideal": "the public code's sizes (100 rounds of 250 images, 30 steps of a width-64 generator): about 750,000 "
             "generator image-steps, roughly 45 minutes per run on two CPU cores by the laptop's measured step cost "
             "scaled to width 64 (an estimate; not attempted), so a GPU run (`make paper-check`)",
}
#: The rows the paper table covers (the papers' mechanisms), in order.
PAPER_ROWS: tuple[str, ...] = ("student", "kd", "db3kd-paper", "zskd-paper", "zskd-authors-code", "zsdb3kd-paper",
                               "fsbbt", "mekd-soft-paper", "mekd-hard-paper", "ideal")


@dataclass
class PaperRow:
    """One row of the paper table: what the lab measured (if anything) on one kind of device, and what the paper
    reports."""

    key: str
    accuracy: Stat | None
    wall_s: Stat | None
    queries: Stat | None
    seeds: list[int]
    reported: float | None
    reported_source: str
    machine: str
    why_not: str = ""
    fraction: str = "full"  # "full", or the share of the paper's size that was run and what was scaled

    @property
    def gap(self) -> float | None:
        """Measured minus reported accuracy, as a fraction (None if either is missing)."""
        if self.accuracy is None or self.reported is None:
            return None
        return self.accuracy.mean - self.reported


def paper_dir(dataset: str = "fashion-mnist", results: str | Path | None = None) -> Path:
    """``<results>/paper-check/paper/<dataset>/``: the paper-profile records and the paper table (``results``: the
    results folder, default :func:`labkit.core.paths.results_dir`)."""
    return study_dir(PAPER_CHECK, "paper", canonical_name(dataset), results)


def paper_records(dataset: str = "fashion-mnist", results: str | Path | None = None) -> dict[str, list[ResultRecord]]:
    """Every saved paper-profile run of ``dataset``, by bench entry (from ``extras.bench.entry``); this includes
    records kept beside a newer run of another device (``<row>-seed<s>.<device>.json``)."""
    folder = paper_dir(dataset, results)
    out: dict[str, list[ResultRecord]] = {}
    for path in sorted(folder.glob("*-seed*.json")):
        rec = ResultRecord.from_dict(json.loads(path.read_text()))
        bench = rec.extras.get("bench", {})
        key = bench.get("entry") if isinstance(bench, dict) else None
        if rec.profile == "paper" and key:
            out.setdefault(str(key), []).append(rec)
    return out


def fraction_label(rec: ResultRecord) -> str:
    """``full``, ``tiny (plumbing check)``, or e.g. ``10% (per_class 3000 → 300)`` from the record's paper_fraction."""
    pf = rec.paper_fraction
    if not pf:
        return "full"
    if pf.get("scale") == "tiny":
        return "tiny (plumbing check)"
    scaled = pf.get("scaled") or {}
    what = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in scaled.items()) if isinstance(scaled, dict) else ""
    frac = pf.get("fraction")
    share = f"{100 * float(frac):g}%" if isinstance(frac, (int, float)) else "part"
    return f"{share} ({what})" if what else share


def _group_key(rec: ResultRecord) -> tuple[str, str]:
    return rec.device.split(":")[0], fraction_label(rec)


def paper_table(dataset: str = "fashion-mnist", results: str | Path | None = None) -> list[PaperRow]:
    """One :class:`PaperRow` per paper row and (device kind, fraction) measured, or one unmeasured row."""
    dataset = canonical_name(dataset)
    saved = paper_records(dataset, results)
    rows = []
    for key in PAPER_ROWS:
        fig = primary_figure(key, dataset)
        reported = fig.student_acc if fig else None
        source = f"{fig.paper}{'' if fig.verified else ', unverified'}" if fig else "—"
        groups: dict[tuple[str, str], list[ResultRecord]] = {}
        for rec in sorted(saved.get(key, []), key=lambda r: r.seed):
            groups.setdefault(_group_key(rec), []).append(rec)
        if not groups:
            rows.append(PaperRow(key, None, None, None, [], reported, source, "",
                                 NOT_MEASURED.get(key, "not run yet"), ""))
        for (_, fraction), recs in sorted(groups.items()):
            rows.append(PaperRow(
                key=key, accuracy=Stat.of([r.student_acc for r in recs]), wall_s=Stat.of([r.wall_s for r in recs]),
                queries=Stat.of([r.queries for r in recs]), seeds=[r.seed for r in recs], reported=reported,
                reported_source=source, machine=f"{recs[0].machine}, {recs[0].device}", fraction=fraction))
    return rows


def paper_table_markdown(dataset: str = "fashion-mnist", results: str | Path | None = None, note: str = "") -> str:
    """The paper table as Markdown: measured rows beside the reported figure and the gap, then what is missing."""
    rows = paper_table(dataset, results)
    lines = [f"# Paper profile: {canonical_name(dataset)}", "",
             "The lab's `paper` profile (the papers' sizes) measured by the lab, beside the figure each paper "
             "**reports** (LeNet-5 → LeNet-5-half; the papers' teachers differ from the lab's 90.54% LeNet-5). "
             "Gap = measured − reported. Model selection on the validation split or the method's teacher-labelled "
             "holdout; test accuracy reported only.", ""]
    if note:
        lines += [note, ""]
    lines += ["| row | size run | measured test acc. % | seeds | reported % | gap (points) | queries | wall s per run "
              "| machine |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.accuracy is None:
            continue
        rep = "—" if r.reported is None else f"{100 * r.reported:.2f} ({r.reported_source})"
        gap = "—" if r.gap is None else f"{100 * r.gap:+.2f}"
        q = "—" if r.queries is None else f"{r.queries.mean:,.0f}"
        w = "—" if r.wall_s is None else (f"{r.wall_s.mean:.0f} ± {r.wall_s.std:.0f}" if r.wall_s.std is not None
                                          else f"{r.wall_s.mean:.0f}")
        lines.append(f"| {r.key} | {r.fraction} | {fmt_pct(r.accuracy)} | {', '.join(map(str, r.seeds))} | {rep} | "
                     f"{gap} | {q} | {w} | {r.machine} |")
    if any(r.fraction not in ("full", "") for r in rows if r.accuracy is not None):
        lines += ["", "A row run at a fraction of the paper's size (make paper-check, to fit ten minutes on one GPU) "
                      "is not the paper's figure at its size; its gap compares unlike sizes."]
    missing = [r for r in rows if r.accuracy is None]
    if missing:
        lines += ["", "## Not measured yet", ""]
        for r in missing:
            rep = "" if r.reported is None else f" (reported: {100 * r.reported:.2f}%, {r.reported_source})"
            lines.append(f"- **{r.key}**{rep}: {r.why_not}.")
    return "\n".join(lines) + "\n"


def write_paper_table(dataset: str = "fashion-mnist", results: str | Path | None = None, note: str = "") -> Path:
    """Write the paper table beside the records (``<results>/paper-check/paper/<dataset>/leaderboard.md``) and return
    its path."""
    out = paper_dir(dataset, results) / PAPER_TABLE_MD
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(paper_table_markdown(dataset, results, note))
    return out
