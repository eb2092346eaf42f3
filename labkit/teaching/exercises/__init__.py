"""Self-checks for the notebooks' "your turn" exercises.

Each notebook's exercise has a checker here (one module per topic). A checker
takes the learner's function, runs it against labkit's reference on fixed cases,
prints a friendly verdict, and returns an :class:`ExerciseResult`. A function that
returns ``None`` counts as "not attempted yet" (so a fresh notebook still runs).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

CheckT = TypeVar("CheckT", bound=Callable[..., "ExerciseResult"])


@dataclass
class ExerciseResult:
    """The verdict of a self-check."""

    name: str
    passed: bool
    attempted: bool
    messages: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        state = "passed" if self.passed else ("not attempted yet" if not self.attempted else "not yet right")
        return f"ExerciseResult({self.name!r}: {state})"

    def _ipython_display_(self) -> None:
        """Show nothing more in a notebook: :meth:`report` has already printed the verdict once."""

    def report(self) -> ExerciseResult:
        """Print the verdict and return self (for a notebook's last line)."""
        if self.passed:
            print(f"✅ {self.name}: passed. " + " ".join(self.messages))
        elif not self.attempted:
            print(f"✏️  {self.name}: not attempted yet. Fill in the function above and run the cell again; "
                  "the reference solution below shows one way.")
        else:
            print(f"❌ {self.name}: not yet right.\n   " + "\n   ".join(self.messages))
        return self


def dedupe_hints(messages: list[str]) -> list[str]:
    """Give each piece of advice once: a message whose hint (the text after its first ". ") an earlier message
    already gave keeps its own finding and points back instead of repeating the hint."""
    first: dict[str, int] = {}
    out: list[str] = []
    for i, msg in enumerate(messages):
        head, sep, hint = msg.partition(". ")
        if sep and hint in first:
            out.append(f"{head} (same advice as above).")
            continue
        if sep:
            first[hint] = i
        out.append(msg)
    return out


def not_attempted(name: str) -> ExerciseResult:
    """The result for a learner function that still returns ``None``."""
    return ExerciseResult(name, passed=False, attempted=False).report()


class _LearnerRaised(Exception):
    """Carries an exception raised inside the learner's function out of a checker."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.exc = exc


def kind_to_learners(name: str) -> Callable[[CheckT], CheckT]:
    """Decorate a checker ``check(fn, ...)``: an exception raised inside the learner's ``fn`` becomes a verdict
    ("Your function raised ...") instead of a raw traceback; the checker's own errors still surface."""

    def decorate(check: CheckT) -> CheckT:
        @functools.wraps(check)
        def wrapper(fn: Any, *args: Any, **kwargs: Any) -> ExerciseResult:
            if not callable(fn):
                return check(fn, *args, **kwargs)

            def guarded(*a: Any, **k: Any) -> Any:
                try:
                    return fn(*a, **k)
                except Exception as exc:  # noqa: BLE001 - any learner error becomes a verdict
                    raise _LearnerRaised(exc) from exc

            try:
                return check(guarded, *args, **kwargs)
            except _LearnerRaised as err:
                exc = err.exc
                return ExerciseResult(name, False, True, [
                    f"Your function raised {type(exc).__name__}: {exc}. Run it on a small input by hand to see "
                    "where, fix it, and run this cell again."]).report()

        return wrapper  # type: ignore[return-value]

    return decorate
