"""The result record every method returns, saved as JSON."""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from labkit.core.device import cpu_summary


@dataclass
class ResultRecord:
    """One run of one method: accuracy, agreement, queries, sizes, time and where it ran."""

    method: str
    access: str
    dataset: str
    teacher_arch: str
    student_arch: str
    teacher_acc: float
    student_acc: float
    agreement: float | None  # None: a served teacher's run (the server measures it at submission)
    queries: int
    transfer_set_size: int  # distinct training rows, holdout excluded (the same definition for every method)
    wall_s: float
    device: str
    profile: str
    seed: int
    torch: str = field(default_factory=lambda: torch.__version__)
    val_acc: float | None = None
    selection: str = "validation split"
    queries_by_phase: dict[str, int] = field(default_factory=dict)
    machine: str = field(
        default_factory=lambda: f"{platform.system()} {platform.machine()} ({platform.node() or 'host'})")
    #: the CPU that ran it (:func:`labkit.core.device.cpu_summary`): timings, and the last bits, differ between CPUs
    #: ("" in records made before it was kept)
    cpu: str = field(default_factory=cpu_summary)
    options: dict[str, object] = field(default_factory=dict)
    #: ingredient name -> {"rows", "holdout_rows", "queries"}: what each named part of the transfer set gave and cost
    ingredients: dict[str, dict[str, int]] = field(default_factory=dict)
    loss: str = ""  # the registered loss the student trained with
    target_kind: str = ""  # probabilities | class-ids | logits | distance-soft-labels
    holdout_size: int = 0  # rows of the teacher-labelled selection holdout (0: the validation split selected)
    best_epoch: int = 0  # the epoch the selection split chose
    calls: int = 0  # box calls that answered those queries
    queries_per_call: float = 0.0  # mean images per box call (0 without calls)
    box_precision: str = ""  # fp32 or bf16 (autocast on CUDA); "" without a box
    synthesis_precision: str = ""  # fp32, or bf16 when the run asked for it (generator and crafting steps)
    method_s: float | None = None  # seconds of the method's own part (synthesis, queries, labelling)
    student_s: float | None = None  # seconds of the student's training (wall_s = method_s + student_s + a little)
    #: the papers' protocol (optimistic; never used for any choice): the student's best test accuracy over its
    #: epochs, beside the honest ``student_acc`` of the epoch the selection split chose (None in older records)
    best_test_epoch_acc: float | None = None
    #: a run at less than the profile's size says so: {"fraction": f, "scaled": {field: [full, run]}, "why": ...}
    paper_fraction: dict[str, object] = field(default_factory=dict)
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def agreement_text(self) -> str:
        """The agreement as a notebook prints it: a percentage, or who measures it when the teacher is served."""
        return "the server's, at submission" if self.agreement is None else f"{self.agreement:.2%}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Pretty JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def save(self, path: str | Path) -> Path:
        """Write the record (or append it to a JSON list if ``path`` already holds records)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ResultRecord:
        """Rebuild a record from :meth:`to_dict` output (unknown keys go to ``extras``)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("cpu", "")  # an older record does not say; this machine's CPU would be wrong
        rest = {k: v for k, v in d.items() if k not in names}
        rec = cls(**known)  # type: ignore[arg-type]
        rec.extras.update(rest)
        return rec


def save_records(records: list[ResultRecord], path: str | Path) -> Path:
    """Write several records as one JSON list."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.to_dict() for r in records], indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_records(path: str | Path) -> list[ResultRecord]:
    """Read a record or a list of records."""
    data = json.loads(Path(path).read_text())
    items = data if isinstance(data, list) else [data]
    return [ResultRecord.from_dict(d) for d in items]


def format_table(records: list[ResultRecord]) -> str:
    """A plain-text table of records (method, access, accuracy, agreement, queries, size, seconds)."""
    head = (f"{'method':<18}{'access':<10}{'student':>9}{'agree':>8}{'teacher':>9}{'queries':>14}"
            f"{'transfer':>10}{'sec':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        agree = "—" if r.agreement is None else r.agreement_text
        lines.append(f"{r.method:<18}{r.access:<10}{100 * r.student_acc:>8.2f}%{agree:>8}"
                     f"{100 * r.teacher_acc:>8.2f}%{r.queries:>14,}{r.transfer_set_size:>10,}{r.wall_s:>8.1f}")
    return "\n".join(lines)
