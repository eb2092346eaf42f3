"""The teacher cache: train once, verify the hash on load, retrain a corrupt file with a message."""
import json

import pytest

from labkit.core.errors import CheckpointError
from labkit.core.teachers import default_spec, get_teacher, read_manifest, sha256_file


def test_train_then_load_with_hash(tmp_path):
    first = get_teacher("toy2d-blobs-3", device="cpu", directory=tmp_path, progress=False, epochs=4)
    assert first.source == "trained" and first.path.exists() and first.test_acc > 0.7
    entry = read_manifest(tmp_path)[first.spec.key]
    assert entry["sha256"] == sha256_file(first.path) and "python -m labkit teacher train" in entry["command"]
    second = get_teacher("toy2d-blobs-3", device="cpu", directory=tmp_path, progress=False, epochs=4)
    assert second.source == "loaded" and second.test_acc == pytest.approx(first.test_acc, abs=1e-4)


def test_corrupt_checkpoint_is_moved_aside_and_retrained(tmp_path, capsys):
    t = get_teacher("toy2d-blobs-3", device="cpu", directory=tmp_path, progress=False, epochs=3)
    t.path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="does not match the sha256"):
        again = get_teacher("toy2d-blobs-3", device="cpu", directory=tmp_path, progress=False, epochs=3)
    assert again.source == "trained" and "retraining" in capsys.readouterr().out
    assert list(tmp_path.glob("*.corrupt-*")), "the bad file is kept, not deleted"
    assert sha256_file(again.path) == read_manifest(tmp_path)[again.spec.key]["sha256"]


def test_unverifiable_checkpoint_is_not_trusted(tmp_path):
    spec = default_spec("toy2d-blobs-3", epochs=2)
    (tmp_path / f"{spec.key}.pt").write_bytes(b"xx")
    with pytest.warns(UserWarning, match="no manifest entry"):
        t = get_teacher("toy2d-blobs-3", device="cpu", directory=tmp_path, progress=False, epochs=2)
    assert t.source == "trained"


def test_broken_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_committed_fashion_mnist_teacher_matches_its_manifest(teacher):
    entry = read_manifest()[teacher.spec.key]
    assert teacher.source == "loaded", "labkit/core/shipped/teachers should hold the lab's Fashion-MNIST teacher"
    assert entry["sha256"] == sha256_file(teacher.path)
    assert teacher.test_acc >= 0.89 and json.dumps(entry)


def test_a_teacher_the_lab_does_not_ship_goes_to_the_user_cache(tmp_path, monkeypatch):
    """Training a new teacher must not touch the tracked labkit/core/shipped/teachers/ (its manifest or a new
    checkpoint)."""
    from labkit.core import paths

    monkeypatch.delenv("LABKIT_TEACHERS", raising=False)
    monkeypatch.delenv("LABKIT_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shipped = paths.teacher_dir()
    manifest_before = (shipped / "manifest.json").read_bytes()
    files_before = sorted(p.name for p in shipped.iterdir())
    t = get_teacher("toy2d-blobs-3", seed=7, device="cpu", progress=False, epochs=2)
    assert t.source == "trained" and t.path.parent == tmp_path / "labkit" / "teachers"
    assert (tmp_path / "labkit" / "teachers" / "manifest.json").exists()
    assert (shipped / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in shipped.iterdir()) == files_before
    again = get_teacher("toy2d-blobs-3", seed=7, device="cpu", progress=False, epochs=2)
    assert again.source == "loaded" and again.path == t.path
    assert get_teacher("toy2d-blobs-3", device="cpu", progress=False).path.parent == shipped  # a shipped one


def test_labkit_home_moves_the_user_cache(tmp_path, monkeypatch):
    """``$LABKIT_HOME`` is the lab's user folder: trained teachers go to its ``teachers/``; ``$LABKIT_TEACHERS``
    still wins; without either, the XDG cache is used."""
    from labkit.core import paths

    monkeypatch.delenv("LABKIT_TEACHERS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LABKIT_HOME", raising=False)
    assert paths.lab_home() == tmp_path / "xdg" / "labkit"
    assert paths.user_teacher_dir() == tmp_path / "xdg" / "labkit" / "teachers"
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    assert paths.user_teacher_dir() == tmp_path / "home" / "teachers"
    t = get_teacher("toy2d-blobs-3", seed=8, device="cpu", progress=False, epochs=2)
    assert t.source == "trained" and t.path.parent == tmp_path / "home" / "teachers"
    monkeypatch.setenv("LABKIT_TEACHERS", str(tmp_path / "own"))
    assert paths.user_teacher_dir() == tmp_path / "own"
