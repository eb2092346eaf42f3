"""The leaderboard's public names in one place (for notebooks and scripts): the table, its statistics, its schema,
where it ran, and its analysis. Each job lives in its own module:

* :mod:`labkit.studies.board_stats`: :class:`Stat` and :class:`EntrySummary` per row (:func:`summarize_entry`);
* :mod:`labkit.studies.environment`: the machine, device and versions (:func:`environment_info`);
* :mod:`labkit.studies.board`: :class:`Leaderboard`, its files and Markdown, :func:`saved_leaderboard`;
* :mod:`labkit.studies.board_schema`: :func:`validate_leaderboard`;
* :mod:`labkit.studies.board_analysis`: :func:`pareto_front`, :func:`cost_comparisons`, :func:`ladder_steps`,
  :func:`accuracy_per_decade`.

Running the bench is :mod:`labkit.studies.bench`; none of these modules runs a method.
"""
from __future__ import annotations

from labkit.core.errors import BenchError
from labkit.studies.bench_rows import COST_PAIRS, FAMILY_TITLES, CostPair
from labkit.studies.board import (
    ACCESS_ORDER,
    LADDER_ORDER,
    LEADERBOARD_JSON,
    LEADERBOARD_MD,
    Leaderboard,
    saved_leaderboard,
)
from labkit.studies.board_analysis import (
    DECADE_MIN_RATIO,
    CostComparison,
    LadderStep,
    accuracy_per_decade,
    cost_comparisons,
    ladder_steps,
    pareto_front,
)
from labkit.studies.board_schema import SCHEMA, STATUSES, validate_leaderboard
from labkit.studies.board_stats import STAT_NAMES, EntrySpec, EntrySummary, Stat, run_elapsed_s, summarize_entry
from labkit.studies.environment import environment_info

__all__ = ["ACCESS_ORDER", "COST_PAIRS", "DECADE_MIN_RATIO", "FAMILY_TITLES", "LADDER_ORDER", "LEADERBOARD_JSON",
           "LEADERBOARD_MD", "SCHEMA", "STATUSES", "STAT_NAMES", "BenchError", "CostComparison", "CostPair",
           "EntrySpec", "EntrySummary", "LadderStep", "Leaderboard", "Stat", "accuracy_per_decade",
           "cost_comparisons", "environment_info", "ladder_steps", "pareto_front", "run_elapsed_s",
           "saved_leaderboard", "summarize_entry", "validate_leaderboard"]
