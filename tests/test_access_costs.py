"""`access_costs`: the leaderboard's interface pairs read in words (does less access cost queries, accuracy, neither?).

Built from hand-made records, one pair per verdict; nothing trains.
"""
from __future__ import annotations

import pytest

from labkit.studies.board_analysis import AccessCost, access_costs
from tests.test_leaderboard import _board, _record


def _pair(rich: str, poor: str, rich_access: str, rich_acc: tuple[float, float], poor_acc: tuple[float, float],
          rich_q: int, poor_q: int) -> dict:
    return {rich: [_record(rich, rich_access, s, a, rich_q, 100) for s, a in enumerate(rich_acc)],
            poor: [_record(poor, "decision", s, a, poor_q, 100) for s, a in enumerate(poor_acc)]}


@pytest.fixture()
def costs() -> dict[str, AccessCost]:
    records = {
        # a decision box as good as a score box, at the same queries: nothing measurable
        **_pair("kd-edge", "kd-edge-hard", "score", (0.80, 0.82), (0.81, 0.83), 100, 100),
        # the same queries, the decision row far lower: accuracy, not queries
        **_pair("mekd-soft-paper", "mekd-hard-paper", "score", (0.70, 0.71), (0.60, 0.61), 1000, 1000),
        # ten times the queries for the same accuracy: paid for in queries
        **_pair("zskd-paper", "zsdb3kd-paper", "white", (0.70, 0.70), (0.70, 0.70), 100, 1000),
        "student": [_record("student", "none", s, 0.9, 0, 100) for s in (0, 1)],  # no interface pair: ignored
    }
    return {c.poorer: c for c in access_costs(_board(records))}


def test_each_interface_pair_gets_its_verdict(costs: dict[str, AccessCost]) -> None:
    assert set(costs) == {"kd-edge-hard", "mekd-hard-paper", "zsdb3kd-paper"}  # the mekd+edge pair is not measured
    verdicts = {k: (c.costs_queries, c.costs_accuracy) for k, c in costs.items()}
    assert verdicts == {"kd-edge-hard": (False, False), "mekd-hard-paper": (False, True),
                        "zsdb3kd-paper": (True, False)}
    assert costs["zsdb3kd-paper"].query_ratio == pytest.approx(10.0)
    assert costs["mekd-hard-paper"].acc_gap == pytest.approx(0.10)


def test_sentences_say_the_verdict_in_words(costs: dict[str, AccessCost]) -> None:
    assert costs["kd-edge-hard"].sentence().endswith("here less access costs nothing measurable.")
    assert "the same queries either way" in costs["kd-edge-hard"].sentence()
    assert costs["mekd-hard-paper"].sentence().endswith("costs accuracy, not queries.")
    assert "10× the queries" in costs["zsdb3kd-paper"].sentence()
    assert costs["zsdb3kd-paper"].sentence().endswith("is paid for in queries.")


def test_a_gap_within_the_seeds_spread_is_no_cost() -> None:
    """Control: the same 10-point gap counts as a cost only when the seeds agree (spread below the gap)."""
    tight = AccessCost("interface: x", "a", "b", "decision", acc_gap=0.10, spread=0.02, query_ratio=1.0)
    noisy = AccessCost("interface: x", "a", "b", "decision", acc_gap=0.10, spread=0.12, query_ratio=1.0)
    assert tight.costs_accuracy and not noisy.costs_accuracy
    assert not AccessCost("interface: x", "a", "b", "decision", 0.0, 0.0, query_ratio=1.05).costs_queries
    assert AccessCost("interface: x", "a", "b", "decision", 0.0, 0.0, query_ratio=1.2).costs_queries
