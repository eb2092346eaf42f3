"""Self-checks for the notebooks' "your turn" exercises.

Each notebook's exercise has a checker here (one module per topic). A checker
takes the learner's function, runs it against labkit's reference on fixed cases,
prints a friendly verdict, and returns an :class:`ExerciseResult`. A function that
returns ``None`` counts as "not attempted yet" (so a fresh notebook still runs).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

CheckT = TypeVar("CheckT", bound=Callable[..., "ExerciseResult"])


@dataclass
class ExerciseResult:
    """The verdict of a self-check."""

    name: str
    passed: bool
    attempted: bool
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.messages = dedupe_hints(self.messages)  # a checker that finds one slip in several cases says it once

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
    """Give each piece of advice once: a message said before is dropped, and a message whose hint (the text after
    its first ". ") an earlier message already gave keeps its own finding and points back instead of repeating it."""
    first: dict[str, int] = {}
    out: list[str] = []
    for i, msg in enumerate(messages):
        if msg in out:
            continue
        head, sep, hint = msg.partition(". ")
        if sep and hint in first:
            out.append(f"{head} (same advice as above).")
            continue
        if sep:
            first[hint] = i
        out.append(msg)
    return out


@dataclass(frozen=True)
class Slip:
    """A typical wrong answer to an exercise: the function a learner who made that mistake writes (same signature
    as the learner's), and the advice that names the mistake."""

    advice: str
    answer: Callable[..., Any]


def same_answer(got: Any, want: Any, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """Whether two answers agree: tensors of one shape within tolerance (NaN equals NaN), numbers, or sequences
    of those, element by element."""
    if isinstance(got, torch.Tensor) or isinstance(want, torch.Tensor):
        if not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)) or got.shape != want.shape:
            return False
        return bool(torch.allclose(got.detach().double().cpu(), want.detach().double().cpu(), rtol=rtol, atol=atol,
                                   equal_nan=True))
    if isinstance(got, (tuple, list)) or isinstance(want, (tuple, list)):
        if not (isinstance(got, (tuple, list)) and isinstance(want, (tuple, list))) or len(got) != len(want):
            return False
        return all(same_answer(a, b, rtol, atol) for a, b in zip(got, want))
    try:
        g, w = float(got), float(want)
    except (TypeError, ValueError):
        return bool(got == want)
    return math.isclose(g, w, rel_tol=rtol, abs_tol=atol) or (math.isnan(g) and math.isnan(w))


def find_slip(slips: Sequence[Slip], cases: Sequence[tuple[Any, ...]], answers: Sequence[Any],
              same: Callable[[Any, Any], bool] = same_answer) -> Slip | None:
    """The first slip that gives the learner's answer on every case (``cases[i]`` are the arguments that gave
    ``answers[i]``), or None: then no known mistake explains the answer, and a checker says so instead of guessing."""
    for slip in slips:
        try:
            if all(same(got, slip.answer(*case)) for case, got in zip(cases, answers)):
                return slip
        except Exception:  # noqa: BLE001 - a slip that cannot run on a case does not explain it
            continue
    return None


def where_it_fails(labels: Sequence[str]) -> str:
    """``"τ = 4"``, ``"τ = 4 and τ = 20"`` or ``"τ = 1, τ = 4 and τ = 20"``: the failing cases, for one message."""
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def diagnose(name: str, labels: Sequence[str], cases: Sequence[tuple[Any, ...]], answers: Sequence[Any],
             wants: Sequence[Any], slips: Sequence[Slip], fallback: str,
             shown: Callable[[Any, Any], str] | None = None,
             same: Callable[[Any, Any], bool] = same_answer) -> ExerciseResult | None:
    """The verdict on well-formed answers: None when every case matches the reference ``wants``; else one message
    that names the failing cases, shows ``shown(answer, want)`` for the first of them, and gives the advice of the
    slip that explains the answers on every case, or ``fallback`` (which must not guess a mistake) when none does."""
    failing = [i for i, (got, want) in enumerate(zip(answers, wants)) if not same(got, want)]
    if not failing:
        return None
    slip = find_slip(slips, cases, answers, same)
    advice = slip.advice if slip else fallback
    first, *rest = failing
    if shown is None:
        message = f"{where_it_fails([labels[i] for i in failing])}: {advice}"
    else:
        also = f" (also wrong: {where_it_fails([labels[i] for i in rest])})" if rest else ""
        message = f"{labels[first]}: {shown(answers[first], wants[first])}{also}. {advice}"
    return ExerciseResult(name, False, True, [message]).report()


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
                    f"Your function raised {type(exc).__name__}: {str(exc).rstrip('.')}. Run it on a small input by "
                    "hand to see where, fix it, and run this cell again."]).report()

        return wrapper  # type: ignore[return-value]

    return decorate
