"""The course kit's pieces without a server: the SQLite store, the private evaluation folder, the CLI."""
from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.core.data import dataset_info
from labkit.core.errors import DatasetNotFoundError, LabkitError
from labkit.course.cli import main as course_main
from labkit.course.image_folder import load_image_folder
from labkit.course.store import CourseStore

INFO = dataset_info("fashion-mnist")


def test_spends_are_atomic_and_a_refused_spend_changes_nothing(tmp_path: Path) -> None:
    store = CourseStore(tmp_path / "c.sqlite")
    token = store.add_learner("ada", "decision", 1000)
    me = store.learner(token)
    assert me is not None and me.remaining == 1000 and store.learner("nope") is None
    results: list[bool] = []

    def spend() -> None:
        results.append(store.spend(me.id, 30, "race") is not None)

    threads = [threading.Thread(target=spend) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 33  # 33 × 30 = 990; the 34th would pass 1,000
    after = store.learner(token)
    assert after is not None and after.spent == 990 and after.calls == 33
    assert store.spend(me.id, 11, "race") is None and store.spend(me.id, 10, "last") is not None
    store.refund(me.id, 10, "last")
    assert store.spent_by_phase(me.id) == {"last": 0, "race": 990}
    with pytest.raises(LabkitError, match="already exists"):
        store.add_learner("ada", "score", 5)
    with pytest.raises(LabkitError, match="access must be"):
        store.add_learner("bob", "white", 5)
    assert CourseStore(tmp_path / "c.sqlite").learner(token).spent == 990  # type: ignore[union-attr]


def _png(path: Path, value: int, size: int = 28) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8), mode="L").save(path)


def test_a_private_folder_of_labelled_images_is_the_hidden_split(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "eval" / "Sneaker" / f"{i}.png", 10 * i)
        _png(tmp_path / "eval" / "0" / f"{i}.png", 255)
    x, y = load_image_folder(tmp_path / "eval", INFO)
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and float(x.max()) == 1.0
    assert sorted(y.tolist()) == [0, 0, 0, 7, 7, 7]
    _png(tmp_path / "bad" / "Pizza" / "0.png", 0)
    with pytest.raises(LabkitError, match="not a class of fashion-mnist"):
        load_image_folder(tmp_path / "bad", INFO)
    _png(tmp_path / "big" / "1" / "0.png", 0, size=32)
    with pytest.raises(LabkitError, match="32x32"):
        load_image_folder(tmp_path / "big", INFO)
    with pytest.raises(DatasetNotFoundError):
        load_image_folder(tmp_path / "missing", INFO)


def test_the_cli_creates_learners_with_tokens_and_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    db, out = tmp_path / "class.sqlite", tmp_path / "tokens.csv"
    assert course_main(["course", "add-learners", "--count", "3", "--budget", "500", "--access", "score",
                        "--db", str(db), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["learner01", "learner02", "learner03"]
    store = CourseStore(db)
    assert all(store.learner(r["token"]) is not None for r in rows)
    assert course_main(["course", "add-learners", "learner01", "--budget", "5", "--db", str(db)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert course_main(["course", "learners", "--db", str(db)]) == 0
    assert capsys.readouterr().out.count("score") == 3
