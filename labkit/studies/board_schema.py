"""The leaderboard file's schema: :func:`validate_leaderboard` lists everything wrong with a ``leaderboard.json``."""
from __future__ import annotations

from typing import Any

from labkit.studies.board_stats import STAT_NAMES

SCHEMA = "labkit-leaderboard/1"
STATUSES = ("ok", "partial", "skipped")
_TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "schema": str, "created_utc": str, "dataset": str, "profile": str, "seeds": list, "teacher": dict,
    "student_arch": str, "environment": dict, "bench_wall_s": (int, float), "total_run_s": (int, float),
    "entries": list, "runs": list}
_ENTRY_KEYS = ("key", "method", "status", "access", "data_access", "options", "seeds", "reported", "reported_note",
               *STAT_NAMES[:-1])
_RUN_KEYS = ("method", "access", "dataset", "student_acc", "agreement", "queries", "transfer_set_size", "wall_s",
             "device", "profile", "seed", "torch")


def _entry_problems(e: Any, i: int) -> list[str]:
    """Everything wrong with one entry of a leaderboard document."""
    if not isinstance(e, dict):
        return [f"entry {i} is not an object"]
    name = repr(e.get("key", i))
    out = [f"entry {name} lacks {k!r}" for k in _ENTRY_KEYS if k not in e]
    if e.get("status") not in STATUSES:
        out.append(f"entry {name} has status {e.get('status')!r}, not one of {STATUSES}")
    if e.get("status") in ("ok", "partial"):
        for key in STAT_NAMES[:-1]:
            s = e.get(key)
            if not isinstance(s, dict) or not all(k in s for k in ("mean", "std", "n", "values")):
                out.append(f"entry {name}: {key!r} is not a statistic (mean, std, n, values)")
            elif s["n"] != len(s["values"]) or not all(isinstance(v, (int, float)) for v in s["values"]):
                out.append(f"entry {name}: {key!r} has n != len(values) or non-numbers")
        acc = e.get("student_acc") or {}
        if isinstance(acc, dict) and not all(0.0 <= v <= 1.0 for v in acc.get("values", [])):
            out.append(f"entry {name}: student_acc values must be fractions in [0, 1]")
    rep = e.get("reported")
    if rep is not None and (not isinstance(rep, dict) or rep.get("label") != "reported"):
        out.append(f"entry {name}: a reported figure must carry label 'reported'")
    if not isinstance(e.get("ingredients", {}), dict):
        out.append(f"entry {name}: 'ingredients' must map ingredient names to rows and queries")
    return out


def validate_leaderboard(d: Any) -> list[str]:
    """Everything wrong with a leaderboard JSON document (empty list: it matches the schema)."""
    if not isinstance(d, dict):
        return ["the document is not a JSON object"]
    out = [f"missing top-level key {k!r}" if k not in d else f"{k!r} has the wrong type ({type(d[k]).__name__})"
           for k, typ in _TOP_LEVEL.items() if k not in d or not isinstance(d[k], typ)]
    if out:
        return out
    if d["schema"] != SCHEMA:
        out.append(f"schema is {d['schema']!r}, expected {SCHEMA!r}")
    out += [f"environment lacks {k!r}" for k in ("device", "machine", "versions") if k not in d["environment"]]
    out += [f"teacher lacks {k!r}" for k in ("arch", "test_acc") if k not in d["teacher"]]
    for i, e in enumerate(d["entries"]):
        out += _entry_problems(e, i)
    for i, r in enumerate(d["runs"]):
        missing = [k for k in _RUN_KEYS if k not in r]
        if missing:
            out.append(f"run {i} lacks {missing}")
        elif r["profile"] != d["profile"] or r["dataset"] != d["dataset"]:
            out.append(f"run {i} is for {r['dataset']}/{r['profile']}, not {d['dataset']}/{d['profile']}")
    return out
