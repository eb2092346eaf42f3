"""The bench's rows as data: one keyword declaration per row, the ladders they form, and the pairs compared.

Each :class:`BenchEntry` names its method, its options, where it sits on its method's ladder (``family``, ``rung``)
and its ``cost_rank`` (1 = the cheapest to run), which gives a time-limited bench its running order
(:data:`QUICK_ORDER`). :data:`COST_PAIRS` are pairs of rows that differ in one thing only; the leaderboard's
analysis (:func:`labkit.studies.board_analysis.cost_comparisons`) reads them.

The rows are Python keyword declarations rather than a TOML file so that mypy checks every field, the options keep
their Python types (tuples reach :func:`labkit.studies.runner.run_method` as they always did), the comments per
ladder stay beside the rows, and no package-data loader is needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BENCH_ENTRIES", "BENCH_KEYS", "COST_PAIRS", "FAMILY_TITLES", "LADDER_RUNGS", "QUICK_ORDER", "BenchEntry",
           "CostPair"]


@dataclass(frozen=True, kw_only=True)
class BenchEntry:
    """One row of the leaderboard: a method, the options it runs with, where it sits on its method's ladder, and how
    costly it is to run against the other rows."""

    key: str  # row name, e.g. "db3kd-paper"; "+x" names a lab addition x the row contains
    method: str  # registry name for run_method, e.g. "db3kd"
    title: str
    access: str  # the teacher access the method is built for (the record's own value wins)
    data_access: str  # labeled | unlabeled | none
    family: str  # the ladder the row belongs to (one per paper), e.g. "zsdb3kd"
    rung: str  # paper | baseline | addition | combined (see LADDER_RUNGS)
    cost_rank: int  # 1 = the cheapest row to run; a time-limited bench runs the rows in this order
    note: str  # one line: what the row's transfer set holds
    options: tuple[tuple[str, Any], ...] = ()
    teacher: str = ""  # the teacher's architecture; "" = the data set's default teacher, the board's own
    student: str = ""  # the student's architecture; "" = the data set's default student

    def teacher_arch(self, default: str) -> str:
        """The teacher this row distils: its own, else ``default`` (the data set's)."""
        return self.teacher or default

    def option_dict(self) -> dict[str, Any]:
        """The options as a dict (for :func:`run_method`)."""
        return dict(self.options)


def _options(**options: Any) -> tuple[tuple[str, Any], ...]:
    """Keyword options as the frozen pairs a :class:`BenchEntry` holds, in the order written."""
    return tuple(options.items())


#: The rungs of a method's ladder, in the order the leaderboard shows them.
LADDER_RUNGS: dict[str, str] = {
    "paper": "the paper's mechanism alone (sizes reduced to the profile)",
    "baseline": "a baseline that isolates one ingredient (no paper's mechanism, or one part of it)",
    "addition": "the paper's mechanism plus one lab addition",
    "combined": "the lab's combined recipe (the profile's default ingredients)",
}
#: The section title of each ladder (a row's ``family``).
FAMILY_TITLES: dict[str, str] = {
    "reference": "Student alone (no teacher)",
    "kd": "Plain KD (Hinton et al. 2015): score box, all labelled data",
    "db3kd": "DB3KD (Wang, ICML 2021): decision box, labelled data",
    "zskd": "ZSKD (Nayak et al., ICML 2019): white box, no data",
    "zsdb3kd": "ZSDB3KD (Wang, ICML 2021): decision box, no data",
    "fsbbt": "FS-BBT (Nguyen et al., ECCV 2022): score box, a few unlabelled images",
    "mekd": "MEKD (Ma et al., CVPR 2024): score or decision box, 10% unlabelled edge data",
    "ideal": "IDEAL (Zhang et al., ICLR 2023): decision box, no data",
}
_SOFT_ONLY = ("distance-soft-labels",)
_MEKD_PAPER_NOTE = ("generated images only, a fresh answered G(z) at every student step; the paper's information "
                    "term, the authors' G and D layers")
_MEKD_IMITATION_NOTE = ("generated images only, one fixed answered set; the lab's G and D and its teacher-imitation "
                        "term (not yet re-based on the online paper row)")
_MEKD_EDGE_NOTE = ("generated images + the edge images answered by the box (lab additions: edge images, "
                   "teacher-imitation)")

#: Every entry of the lab's leaderboard, ladder by ladder, in the order the table shows them.
BENCH_ENTRIES: tuple[BenchEntry, ...] = (
    BenchEntry(key="student", method="student", title="Student alone (CE on labels, no teacher)", access="none",
               data_access="labeled", family="reference", rung="paper", cost_rank=2,
               note="every labelled training image, cross-entropy on the true labels"),
    BenchEntry(key="kd", method="kd", title="Plain KD (Hinton), all training data", access="score",
               data_access="labeled", family="kd", rung="paper", cost_rank=5,
               note="all labelled training images, each answered once by the score box"),
    # ---- DB3KD (labelled data, decision box)
    BenchEntry(key="db3kd-paper", method="db3kd", title="DB3KD as published: every row soft-labelled by BD",
               access="decision", data_access="labeled", family="db3kd", rung="paper", cost_rank=16,
               options=_options(variant="paper", measure="bd"),
               note="distance-soft-labels only: every training image it uses gets a BD soft label (images sized for "
                    "the profile)"),
    BenchEntry(key="db3kd-soft-only", method="db3kd", title="DB3KD's soft-labelled images alone (BD)",
               access="decision", data_access="labeled", family="db3kd", rung="baseline", cost_rank=18,
               options=_options(measure="bd", ingredients=_SOFT_ONLY),
               note="distance-soft-labels only: the soft-labelled images of the combined rows, nothing else"),
    BenchEntry(key="db3kd-true-labels-only", method="db3kd", title="DB3KD's true-label rows alone (CE, no teacher)",
               access="none", data_access="labeled", family="db3kd", rung="baseline", cost_rank=19,
               options=_options(ingredients=("true-label-rows",)),
               note="true-label-rows only: the combined rows' images, cross-entropy on the true labels, no query"),
    BenchEntry(key="db3kd-bd+true-labels", method="db3kd", title="DB3KD (BD) + true-label rows", access="decision",
               data_access="labeled", family="db3kd", rung="combined", cost_rank=11, options=_options(measure="bd"),
               note="BD soft-labelled images + true-label rows (a lab addition: CE on the true labels of more images)"),
    BenchEntry(key="db3kd-mbd+true-labels", method="db3kd", title="DB3KD (MBD) + true-label rows", access="decision",
               data_access="labeled", family="db3kd", rung="combined", cost_rank=6, options=_options(measure="mbd"),
               note="MBD soft-labelled images + true-label rows (a lab addition: CE on the true labels of more "
                    "images)"),
    # ---- ZSKD (no data, white box)
    BenchEntry(key="zskd-paper", method="zskd", title="ZSKD as published: Data Impressions only", access="white",
               data_access="none", family="zskd", rung="paper", cost_rank=13, options=_options(variant="paper"),
               note="impressions only, β ∈ {1, 0.1} applied after the normalisation as the paper describes"),
    BenchEntry(key="zskd-beta-authors", method="zskd",
               title="ZSKD with β as the authors' code applies it (β cancels: all β = 1)", access="white",
               data_access="none", family="zskd", rung="paper", cost_rank=20,
               options=_options(variant="paper", beta_mode="authors"),
               note="impressions only, the paper's crafting with β scaled before the normalisation (the authors' "
                    "code), so every impression has β = 1: the β ablation of zskd-paper"),
    BenchEntry(key="zskd-authors-code", method="zskd", title="ZSKD as the authors' public code runs it",
               access="white", data_access="none", family="zskd", rung="paper", cost_rank=28,
               options=_options(variant="authors-code"),
               note="the authors' crafting (β cancels, min-max rescaling, lr 0.001, warm-started chains) and their "
                    "student on relabelled augmentations of every batch, fresh at every step"),
    BenchEntry(key="zskd-paper-augmented", method="zskd",
               title="ZSKD as published, with its optional relabelled augmentation (the authors' code's set)",
               access="white", data_access="none", family="zskd", rung="paper", cost_rank=31,
               options=_options(variant="paper", ingredients=("impressions", "authors-augmentation"),
                                augmentations_per_step=4, epochs=15),
               note="the paper's impressions (its crafting, β and τ) and the augmentation step the paper leaves "
                    "optional, as the authors' code makes it: 4 of its 106 copies per impression per student step, "
                    "relabelled by the teacher at τ (4, not all 106, and 15 epochs, not zskd-paper's 30, by the "
                    "laptop's compute: twice the student's copies would pass the 10-minute cap)"),
    BenchEntry(key="zskd-copies", method="zskd", title="ZSKD + relabelled dark-border/blur copies", access="white",
               data_access="none", family="zskd", rung="combined", cost_rank=7,
               note="impressions + one relabelled dark-border/blur copy each (a lab addition tuned on the labelled "
                    "validation split)"),
    # ---- ZSDB3KD (no data, decision box)
    BenchEntry(key="zsdb3kd-paper", method="zsdb3kd",
               title="ZSDB3KD as published: the authors' noise, pseudo-samples only", access="decision",
               data_access="none", family="zsdb3kd", rung="paper", cost_rank=14, options=_options(variant="paper"),
               note="pseudo-samples only, grown from the authors' noise, with their DB3 soft labels"),
    BenchEntry(key="zsdb3kd-paper-db3-teacher", method="zsdb3kd",
               title="ZSDB3KD as published, on the authors' own LeNet-5 teacher", access="decision",
               data_access="none", family="zsdb3kd", rung="paper", cost_rank=27, options=_options(variant="paper"),
               teacher="lenet5-db3", student="lenet5-db3-half",
               note="pseudo-samples only, as zsdb3kd-paper, from the DB3 papers' LeNet-5 (conv 20/50, FC 800-200) "
                    "into its half-width student"),
    BenchEntry(key="noise-kd", method="noise-kd",
               title="Naive KD on noise: teacher-labelled noise bank alone, hard labels", access="decision",
               data_access="none", family="zsdb3kd", rung="baseline", cost_rank=8,
               note="noise-bank only: the dead-leaves draws the combined row also draws, class-balanced, CE on class "
                    "ids"),
    BenchEntry(key="zsdb3kd+dead-leaves", method="zsdb3kd", title="ZSDB3KD + dead-leaves starting noise",
               access="decision", data_access="none", family="zsdb3kd", rung="addition", cost_rank=21,
               options=_options(variant="paper", noise="dead-leaves"),
               note="pseudo-samples only, grown from the lab's dead-leaves noise instead of the authors'"),
    BenchEntry(key="zsdb3kd+bank", method="zsdb3kd", title="ZSDB3KD + dead-leaves noise + paths + noise bank",
               access="decision", data_access="none", family="zsdb3kd", rung="combined", cost_rank=10,
               note="pseudo-samples + their paths + a class-balanced bank of teacher-labelled dead-leaves noise (lab "
                    "additions)"),
    # ---- FS-BBT (a few unlabelled images, score box)
    BenchEntry(key="fsbbt", method="fsbbt", title="FS-BBT, few-shot + MixUp + CVAE", access="score",
               data_access="unlabeled", family="fsbbt", rung="paper", cost_rank=1,
               note="N few-shot images + their MixUps + CVAE samples, all answered by the score box (the paper's "
                    "recipe)"),
    # ---- MEKD (10% unlabelled edge data, score or decision box)
    BenchEntry(key="mekd-soft-paper", method="mekd", title="MEKD as published, soft responses: generated images only",
               access="score", data_access="unlabeled", family="mekd", rung="paper", cost_rank=15,
               options=_options(variant="paper", response="soft", inverse_check=2000), note=_MEKD_PAPER_NOTE),
    BenchEntry(key="mekd-hard-paper", method="mekd", title="MEKD as published, hard responses: generated images only",
               access="decision", data_access="unlabeled", family="mekd", rung="paper", cost_rank=22,
               options=_options(variant="paper", response="hard", inverse_check=2000, transfer_size=24000),
               note=_MEKD_PAPER_NOTE + "; 24,000 stream images per epoch (its scaling study, on validation)"),
    BenchEntry(key="mekd-soft+imitation", method="mekd",
               title="MEKD (soft) + the lab's teacher-imitation information term", access="score",
               data_access="unlabeled", family="mekd", rung="addition", cost_rank=23,
               options=_options(response="soft", ingredients=("generated",)), note=_MEKD_IMITATION_NOTE),
    BenchEntry(key="mekd-hard+imitation", method="mekd",
               title="MEKD (hard) + the lab's teacher-imitation information term", access="decision",
               data_access="unlabeled", family="mekd", rung="addition", cost_rank=24,
               options=_options(response="hard", ingredients=("generated",)), note=_MEKD_IMITATION_NOTE),
    BenchEntry(key="kd-edge", method="kd-edge", title="Plain KD on MEKD's 10% edge subset (soft answers)",
               access="score", data_access="unlabeled", family="mekd", rung="baseline", cost_rank=3,
               note="edge-images only: the edge subset answered by the score box, plain KD, MEKD's student recipe"),
    BenchEntry(key="kd-edge-hard", method="kd-edge",
               title="Plain KD on MEKD's 10% edge subset (one-hot teacher answers)", access="decision",
               data_access="unlabeled", family="mekd", rung="baseline", cost_rank=17,
               options=_options(response="hard"),
               note="edge-images only: the edge subset answered by the decision box, CE on the class ids"),
    BenchEntry(key="mekd-soft+edge", method="mekd", title="MEKD (soft) + teacher-imitation + edge images",
               access="score", data_access="unlabeled", family="mekd", rung="combined", cost_rank=9,
               options=_options(response="soft"), note=_MEKD_EDGE_NOTE),
    BenchEntry(key="mekd-hard+edge", method="mekd", title="MEKD (hard) + teacher-imitation + edge images",
               access="decision", data_access="unlabeled", family="mekd", rung="combined", cost_rank=4,
               options=_options(response="hard"), note=_MEKD_EDGE_NOTE),
    # ---- IDEAL (after the seed papers: decision box, no data)
    BenchEntry(key="ideal", method="ideal",
               title="IDEAL: a generator trained against the student, one hard-label query per image",
               access="decision", data_access="none", family="ideal", rung="paper", cost_rank=25,
               note="generated images only: every round's batch labelled once by the decision box (no re-asking)"),
    BenchEntry(key="ideal+round-samples", method="ideal",
               title="IDEAL + round samples: 1,500 more draws from each round's generator", access="decision",
               data_access="none", family="ideal", rung="addition", cost_rank=26,
               options=_options(variant="round-samples"),
               note="generated best batches + round samples (a lab addition: fresh latents through each round's "
                    "trained generator, labelled once), 40 rounds of 2,000 images"),
    BenchEntry(key="noise-kd-cnn", method="noise-kd",
               title="Naive KD on noise, on the public code's BatchNorm CNN pair (IDEAL's floor there)",
               access="decision", data_access="none", family="ideal", rung="baseline", cost_rank=12,
               teacher="ideal-cnn", student="ideal-cnn",
               note="noise-bank only, as the noise-kd row, on the CNN pair that the ideal-cnn and ideal-public-code "
                    "rows distil: their floor on their own teacher"),
    BenchEntry(key="ideal-cnn", method="ideal",
               title="IDEAL (the paper's loop, the lab's laptop settings) on the public code's BatchNorm CNN pair",
               access="decision", data_access="none", family="ideal", rung="paper", cost_rank=29,
               teacher="ideal-cnn", student="ideal-cnn",
               note="generated images only, every round's batch labelled once, as the `ideal` row; the teacher and "
                    "student are the public code's CNN (conv 16 and 32, each with BatchNorm, one FC layer)"),
    BenchEntry(key="ideal-public-code", method="ideal",
               title="IDEAL as its public code runs it, on its BatchNorm CNN pair", access="decision",
               data_access="none", family="ideal", rung="paper", cost_rank=30,
               options=_options(variant="public-code"), teacher="ideal-cnn", student="ideal-cnn",
               note="the public code's loop (every pooled image asked again, flipped at random, each round; laptop: "
                    "19 rounds of 500 for 95,000 queries, the code's 250 a round in the paper profile), its generator "
                    "(N(0, 0.02) init, nz 256, width 64) and information term, on its own teacher and student "
                    "(conv 16 and 32, each with BatchNorm, one FC layer); the generator's steps in bf16 where the "
                    "CPU has it (g_precision=auto; the teacher is asked in fp32)"),
)
BENCH_KEYS: tuple[str, ...] = tuple(e.key for e in BENCH_ENTRIES)
#: A running order for a time-limited bench (notebook 08 in smoke): cheap runs first, one per access level early.
QUICK_ORDER: tuple[str, ...] = tuple(e.key for e in sorted(BENCH_ENTRIES, key=lambda e: e.cost_rank))


@dataclass(frozen=True, kw_only=True)
class CostPair:
    """Two rows that differ in one thing only (the teacher's interface, the data, or the method)."""

    question: str  # what the pair answers, e.g. "interface: scores vs decisions, ..."
    more: str  # the row with more of that thing (the richer interface, more data, the extra machinery)
    less: str  # the row with less


#: Pairs of rows that differ in one thing only; :func:`labkit.studies.board_analysis.cost_comparisons` prices them.
COST_PAIRS: tuple[CostPair, ...] = (
    CostPair(question="interface: scores vs decisions, the same edge images and plain KD", more="kd-edge",
             less="kd-edge-hard"),
    CostPair(question="interface: scores vs decisions, MEKD as published (each at the stream length its study chose)",
             more="mekd-soft-paper",
             less="mekd-hard-paper"),
    CostPair(question="interface: scores vs decisions, the lab's combined MEKD", more="mekd-soft+edge",
             less="mekd-hard+edge"),
    CostPair(question="interface: white box vs decisions, no data, the papers' mechanisms", more="zskd-paper",
             less="zsdb3kd-paper"),
    CostPair(question="data: all labelled images vs a few unlabelled ones, a score box", more="kd", less="fsbbt"),
    CostPair(question="data: a teacher vs the labels alone", more="kd", less="student"),
    CostPair(question="method: generative alignment vs plain KD, both with the edge images", more="mekd-soft+edge",
             less="kd-edge"),
)
