"""The course server's state in SQLite (WAL): learners, their budgets and spent queries, and submissions.

Every spend is one ``UPDATE ... WHERE spent + n <= budget`` inside an immediate transaction, so concurrent calls
can never spend more than a budget, and a committed spend survives the server being killed (WAL, synchronous=FULL).
Tokens are stored as SHA-256 hashes; the plain token is shown once, when the learner is created.
"""
from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError

LEVELS = ("decision", "score")
SCHEMA = """
CREATE TABLE IF NOT EXISTS learners (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_sha256 TEXT UNIQUE NOT NULL,
    access TEXT NOT NULL CHECK (access IN ('decision', 'score')), budget INTEGER NOT NULL CHECK (budget >= 0),
    spent INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0 AND spent <= budget), calls INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS spent_by_phase (
    learner_id INTEGER NOT NULL REFERENCES learners(id), phase TEXT NOT NULL, queries INTEGER NOT NULL,
    PRIMARY KEY (learner_id, phase));
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY, learner_id INTEGER NOT NULL REFERENCES learners(id), arch TEXT NOT NULL,
    accuracy REAL NOT NULL, agreement REAL NOT NULL, queries INTEGER NOT NULL, access TEXT NOT NULL,
    split TEXT NOT NULL, created REAL NOT NULL);
"""


@dataclass(frozen=True)
class Learner:
    """One learner: name, access level, budget and what is spent."""

    id: int
    name: str
    access: str
    budget: int
    spent: int
    calls: int

    @property
    def remaining(self) -> int:
        return self.budget - self.spent


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CourseStore:
    """Learners, budgets and submissions in one SQLite file (one connection per call: safe across threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only query, on a connection of its own."""
        db = self._connect()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # ------------------------------------------------------------------ learners
    def add_learner(self, name: str, access: str, budget: int) -> str:
        """Create a learner; return the plain token (shown once; only its hash is kept)."""
        if access not in LEVELS:
            raise LabkitError(f"access must be one of {LEVELS}, got {access!r}")
        if budget < 0:
            raise LabkitError("budget must be a non-negative number of queries")
        token = secrets.token_urlsafe(24)
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO learners (name, token_sha256, access, budget, created) VALUES (?,?,?,?,?)",
                           (name, token_hash(token), access, int(budget), time.time()))
        except sqlite3.IntegrityError as exc:
            raise LabkitError(f"a learner named {name!r} already exists; choose another name") from exc
        return token

    def learner(self, token: str) -> Learner | None:
        """The learner holding ``token``, or None."""
        rows = self._read("SELECT id, name, access, budget, spent, calls FROM learners WHERE token_sha256 = ?",
                          (token_hash(token),))
        return Learner(*rows[0]) if rows else None

    def learner_spent(self, learner_id: int) -> int:
        """The learner's spent queries now."""
        rows = self._read("SELECT spent FROM learners WHERE id = ?", (learner_id,))
        return int(rows[0][0]) if rows else 0

    def learners(self) -> list[Learner]:
        """Every learner, in the order they were added."""
        return [Learner(*r) for r in self._read("SELECT id, name, access, budget, spent, calls FROM learners "
                                                "ORDER BY id")]

    def spend(self, learner_id: int, n: int, phase: str) -> Learner | None:
        """Spend ``n`` queries atomically; None (and nothing spent) when the budget does not hold them."""
        with self._transaction() as db:
            cur = db.execute("UPDATE learners SET spent = spent + ?, calls = calls + 1 "
                             "WHERE id = ? AND spent + ? <= budget", (n, learner_id, n))
            if cur.rowcount != 1:
                return None
            db.execute("INSERT INTO spent_by_phase (learner_id, phase, queries) VALUES (?,?,?) "
                       "ON CONFLICT (learner_id, phase) DO UPDATE SET queries = queries + excluded.queries",
                       (learner_id, phase[:80], n))
            row = db.execute("SELECT id, name, access, budget, spent, calls FROM learners WHERE id = ?",
                             (learner_id,)).fetchone()
        return Learner(*row)

    def refund(self, learner_id: int, n: int, phase: str) -> None:
        """Give back a spend whose answer could not be computed (the server's own failure)."""
        with self._transaction() as db:
            db.execute("UPDATE learners SET spent = spent - ?, calls = calls - 1 WHERE id = ?", (n, learner_id))
            db.execute("UPDATE spent_by_phase SET queries = queries - ? WHERE learner_id = ? AND phase = ?",
                       (n, learner_id, phase[:80]))

    def spent_by_phase(self, learner_id: int) -> dict[str, int]:
        """The learner's spent queries by the phase their box named."""
        return dict(self._read("SELECT phase, queries FROM spent_by_phase WHERE learner_id = ? ORDER BY phase",
                               (learner_id,)))

    # ------------------------------------------------------------------ submissions
    def add_submission(self, learner: Learner, arch: str, accuracy: float, agreement: float, split: str) -> int:
        """Record a graded submission with the learner's spent queries and access level now; returns its id."""
        with self._transaction() as db:
            cur = db.execute("INSERT INTO submissions (learner_id, arch, accuracy, agreement, queries, access, split, "
                             "created) SELECT id, ?, ?, ?, spent, access, ?, ? FROM learners WHERE id = ?",
                             (arch, accuracy, agreement, split, time.time(), learner.id))
            return int(cur.lastrowid or 0)

    def submissions(self, learner_id: int | None = None) -> list[dict[str, Any]]:
        """Every submission (or one learner's), newest first, with the learner's name."""
        sql = ("SELECT s.id, l.name, s.arch, s.accuracy, s.agreement, s.queries, s.access, s.split, s.created "
               "FROM submissions s JOIN learners l ON l.id = s.learner_id")
        args: tuple[Any, ...] = ()
        if learner_id is not None:
            sql, args = sql + " WHERE s.learner_id = ?", (learner_id,)
        rows = self._read(sql + " ORDER BY s.id DESC", args)
        keys = ("id", "learner", "arch", "accuracy", "agreement", "queries", "access", "split", "created")
        return [dict(zip(keys, r)) for r in rows]
