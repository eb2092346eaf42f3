"""Shared fixtures: real-data availability, the cached teacher, generated tiny data sets."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LABKIT_OFFLINE", "1")  # tests never try a download unless they ask for one
#: pytest-xdist's workers share the cores (``make test`` runs two): one torch thread each, not two that spin on one core
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
torch.set_num_threads(THREADS)
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))  # the kernels and CLIs the tests start, too


#: test files by their time in ``make test`` (2026-12-06, 2 cores), longest first; the rest keep pytest's order after
#: them. With ``--dist loadfile --no-loadscope-reorder`` (the Makefile) two workers take whole files in this order,
#: so the long ones start at once and the short ones fill the end: both workers finish within seconds of each other.
LONGEST_FIRST = ("test_browser.py", "test_pipeline.py", "test_course_server.py", "test_cost.py", "test_assignments.py",
                 "test_fresh_install.py", "test_make_lab.py", "test_paper_check.py", "test_ideal.py",
                 "test_few_labels.py", "test_notebook_runner.py", "test_bench.py", "test_figures_read.py",
                 "test_zskd.py", "test_precision_study.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest test files first (a stable sort: each file's tests keep their order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _fmnist_present() -> bool:
    from labkit.core.data import _find_idx_pair, _idx_dirs
    from labkit.core.paths import DEBIAN_FASHION_MNIST, data_dir

    dirs = _idx_dirs(data_dir(), "fashion-mnist") + [DEBIAN_FASHION_MNIST]
    return any(_find_idx_pair(d, "train") and _find_idx_pair(d, "test") for d in dirs)


FMNIST = _fmnist_present()
needs_fmnist = pytest.mark.skipif(not FMNIST, reason="Fashion-MNIST not installed here "
                                  "(apt-get install dataset-fashion-mnist, or put the IDX files in data/fashion-mnist)")


@pytest.fixture(scope="session")
def fmnist_available() -> bool:
    """Skip the test where real Fashion-MNIST is absent."""
    if not FMNIST:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return True


@pytest.fixture(scope="session")
def teacher(fmnist_available: bool):
    """The lab's cached Fashion-MNIST LeNet-5 teacher (CPU)."""
    from labkit.core.teachers import get_teacher

    return get_teacher("fashion-mnist", device="cpu", progress=False)


def make_idx_dataset(root: Path, name: str = "mnist", n_train: int = 120, n_test: int = 40, seed: int = 0) -> Path:
    """Write tiny MNIST-format IDX files (gzipped) under ``root/<name>`` and return that folder."""
    from labkit.core.data import write_idx

    g = torch.Generator().manual_seed(seed)
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = torch.arange(n) % 10
        x = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.int64).to(torch.uint8)
        x[:, :2, :2] = y.view(-1, 1, 1).to(torch.uint8) * 20  # a label-dependent mark
        write_idx(d / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", y.to(torch.uint8))
    return d


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    """A temporary data root holding tiny generated MNIST IDX files."""
    make_idx_dataset(tmp_path, "mnist")
    return tmp_path
