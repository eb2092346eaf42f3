"""The data chain: generated IDX and CIFAR pickles, splits, toy data, the source order and its errors."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit.core.data as data
from labkit.core.data import load_dataset, load_splits, make_toy2d, read_idx, write_idx
from labkit.core.errors import DatasetNotFoundError, UnknownNameError

from .conftest import make_idx_dataset, needs_fmnist


def test_idx_roundtrip_plain_and_gz(tmp_path):
    a = torch.randint(0, 256, (7, 5, 3), dtype=torch.int64).to(torch.uint8)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        assert torch.equal(read_idx(tmp_path / name), a)


def test_corrupt_idx_is_a_clear_error(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, torch.zeros(4, 28, 28, dtype=torch.uint8))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DatasetNotFoundError, match="truncated or corrupt.*fetch again"):
        read_idx(p)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DatasetNotFoundError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_mnist_from_generated_idx(tiny_idx_dir):
    train = load_dataset("mnist", "train", root=tiny_idx_dir)
    test = load_dataset("mnist", "test", root=tiny_idx_dir)
    assert train.x.shape[1:] == (1, 28, 28) and train.x.dtype == torch.float32
    assert 0 <= float(train.x.min()) and float(train.x.max()) <= 1
    assert len(test) == 40 and test.y.dtype == torch.int64
    assert train.info.classes == data.MNIST_CLASSES and str(tiny_idx_dir) in train.info.source


def test_validation_split_is_fixed_and_disjoint(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path, "mnist", n_train=6000, n_test=20)
    monkeypatch.setitem(data.VAL_SIZE, "mnist", 500)
    data._raw_real.cache_clear()
    s = load_splits("mnist", root=tmp_path)
    assert len(s["train"]) == 5500 and len(s["val"]) == 500
    flat_tr = {tuple(r) for r in s["train"].x.flatten(1)[:, :40].mul(255).round().int().tolist()}
    flat_va = {tuple(r) for r in s["val"].x.flatten(1)[:, :40].mul(255).round().int().tolist()}
    assert not flat_tr & flat_va  # random images: any overlap would mean a shared sample
    again = load_dataset("mnist", "val", root=tmp_path)
    assert torch.equal(again.x, s["val"].x)


def test_limit_gives_a_seeded_balanced_subset(tiny_idx_dir):
    a = load_dataset("mnist", "train", root=tiny_idx_dir, limit=30, seed=3)
    b = load_dataset("mnist", "train", root=tiny_idx_dir, limit=30, seed=3)
    assert torch.equal(a.x, b.x) and len(a) == 30
    assert torch.bincount(a.y, minlength=10).tolist() == [3] * 10


def _write_cifar(root: Path, n: int = 20) -> None:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        with open(d / name, "wb") as fh:
            pickle.dump(entry, fh)


def test_cifar10_from_generated_pickles(tmp_path, monkeypatch):
    _write_cifar(tmp_path)
    monkeypatch.setitem(data.VAL_SIZE, "cifar10", 10)
    x = load_dataset("cifar10", "train", root=tmp_path)
    t = load_dataset("cifar10", "test", root=tmp_path)
    assert x.x.shape == (90, 3, 32, 32) and len(t) == 20
    assert x.info.classes[0] == "airplane" and t.info.image_shape == (3, 32, 32)


def test_missing_everywhere_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data.paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion-mnist", "train", root=tmp_path / "empty")
    msg = str(err.value)
    assert "1. the lab's data directory" in msg and "LABKIT_DATA" in msg
    assert "2. the Debian package location" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "3. a torchvision download" in msg and "python -m labkit data fetch" in msg


def test_download_is_the_third_source(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, root):
        calls.append(name)
        make_idx_dataset(root / "MNIST", "raw")

    monkeypatch.setattr(data, "_download", fake_download)
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert calls == ["mnist"] and len(ds) == 40 and "MNIST" in ds.info.source


def test_toy2d_is_seeded_in_unit_square_with_three_or_more_classes():
    for family in data.TOY_FAMILIES:
        x, y = make_toy2d(family, 600, num_classes=4, seed=1)
        x2, _ = make_toy2d(family, 600, num_classes=4, seed=1)
        assert torch.equal(x, x2) and x.shape == (600, 2)
        assert float(x.min()) >= 0 and float(x.max()) <= 1 and set(y.tolist()) == {0, 1, 2, 3}
    ds = load_dataset("toy2d-spirals-5", "test")
    assert ds.info.num_classes == 5 and ds.info.image_shape == (2,)


def test_unknown_dataset_and_split():
    with pytest.raises(UnknownNameError, match="Unknown dataset 'imagenet'.*fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(UnknownNameError, match="Unknown split"):
        load_dataset("toy2d-blobs-3", "dev")


@needs_fmnist
def test_real_fashion_mnist():
    train, val, test = (load_dataset("fashion-mnist", s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (55_000, 5_000, 10_000)
    assert train.info.classes[9] == "Ankle boot" and torch.bincount(test.y).tolist() == [1000] * 10


@pytest.mark.skipif(not (data.paths.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="the Debian package dataset-fashion-mnist is not installed here")
def test_debian_package_is_the_second_source(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))  # an empty lab data directory: source 1 finds nothing

    def no_download(name, root):
        raise AssertionError("the Debian files should have been used before any download")

    monkeypatch.setattr(data, "_download", no_download)
    test = load_dataset("fashion-mnist", "test")
    assert test.info.source == str(data.paths.DEBIAN_FASHION_MNIST)
    assert len(test) == 10_000 and test.x.shape[1:] == (1, 28, 28)
    assert torch.bincount(test.y, minlength=10).tolist() == [1000] * 10
    assert not any(tmp_path.iterdir())  # nothing was written to the lab's data directory
