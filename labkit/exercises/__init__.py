"""Self-checks for the notebooks' "your turn" exercises.

Each notebook's exercise has a checker here (one module per topic). A checker
takes the learner's function, runs it against labkit's reference on fixed cases,
prints a friendly verdict, and returns an :class:`ExerciseResult`. A function that
returns ``None`` counts as "not attempted yet" (so a fresh notebook still runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field


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


def not_attempted(name: str) -> ExerciseResult:
    """The result for a learner function that still returns ``None``."""
    return ExerciseResult(name, passed=False, attempted=False).report()
