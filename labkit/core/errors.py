"""The lab's error types: every one says what went wrong and what to do next."""
from __future__ import annotations


class LabkitError(Exception):
    """Base class for every error the lab raises on purpose."""


class UnknownNameError(LabkitError, ValueError):
    """An unknown dataset, model, method, loss or profile name."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...], hint: str = "") -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        tail = f" {hint}" if hint else ""
        super().__init__(f"Unknown {kind} {name!r}. Valid {plural(kind)} are: {', '.join(self.valid)}.{tail}")


def plural(noun: str) -> str:
    """English plural of the last word of ``noun``: "loss" -> "losses", "option" -> "options"."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


class ConfigError(LabkitError, ValueError):
    """A method's settings cannot work together (a size below 1, an empty ingredient list, ...)."""


class UnknownChoiceError(UnknownNameError, ConfigError):
    """A config field's value is not one of its declared ``choices`` (an unknown name and a setting that cannot work,
    so ``except UnknownNameError`` and ``except ConfigError`` both catch it)."""


class DatasetNotFoundError(LabkitError, FileNotFoundError):
    """No source for a data set worked."""


class CheckpointError(LabkitError):
    """A checkpoint file is missing, corrupt or does not match its manifest."""


class NonFiniteError(LabkitError, FloatingPointError):
    """A loss or tensor turned NaN or infinite."""


class QueryBudgetExceeded(LabkitError):
    """A black-box query would pass the budget; nothing was answered or counted."""

    def __init__(self, spent: int, requested: int, budget: int, message: str | None = None) -> None:
        self.spent, self.requested, self.budget = spent, requested, budget
        super().__init__(message or (
            f"Query budget exhausted: {spent} of {budget} queries already spent, and this call "
            f"asks for {requested} more. Nothing was answered and the counter is unchanged. "
            f"Raise the budget (BlackBox(..., budget=...)), or query fewer images."
        ))

    @classmethod
    def from_server(cls, message: str) -> QueryBudgetExceeded:
        """The course server's refusal (its message names the learner's spent and budget)."""
        return cls(-1, -1, -1, message)


class AccessDenied(LabkitError, PermissionError):
    """The black box's access level does not allow this."""


class InvalidQueryError(LabkitError, ValueError):
    """A query batch has the wrong shape, dtype, channels, range, or holds NaN."""


class BenchError(LabkitError):
    """The bench or its leaderboard cannot do what was asked (a saved file does not match, a run failed, ...)."""
