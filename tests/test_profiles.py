"""Profiles: defaults, the environment override and clear errors."""
import pytest

from labkit.core.errors import UnknownNameError
from labkit.core.profiles import PROFILES, default_profile_name, get_profile, pick


def test_three_profiles_and_the_student_tables_grow():
    s, l, p = (PROFILES[n] for n in ("smoke", "laptop", "paper"))
    assert s.train_limit == 3000 and l.train_limit is None and p.train_limit is None
    assert set(s.as_dict()) == {"name", "description", "train_limit"}  # sizes live in the methods' configs
    from labkit.methods.kd import StudentConfig

    cfgs = [StudentConfig.for_profile(n) for n in ("smoke", "laptop", "paper")]
    assert [(c.epochs, c.batch_size) for c in cfgs] == [(2, 128), (12, 128), (40, 256)]


def test_env_override(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    assert default_profile_name() == "smoke" and get_profile().name == "smoke"
    monkeypatch.delenv("LABKIT_PROFILE")
    assert get_profile().name in ("laptop", "paper")


def test_unknown_profile_lists_valid(monkeypatch):
    with pytest.raises(UnknownNameError, match="laptop, paper, smoke"):
        get_profile("huge")
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    with pytest.raises(UnknownNameError, match=r"Unknown profile 'tiny'.*environment variable \$LABKIT_PROFILE"):
        get_profile()
    with pytest.raises(UnknownNameError, match="profile argument"):
        get_profile("fast")
    with pytest.raises(UnknownNameError, match=r"not 2 \(int\)"):
        get_profile(2)  # type: ignore[arg-type]


def test_toy_names_with_a_word_for_the_class_count_say_what_is_wrong():
    from labkit.core.data import canonical_name, dataset_info

    with pytest.raises(UnknownNameError, match="'three' is not a number"):
        canonical_name("toy2d-spirals-three")
    with pytest.raises(UnknownNameError, match="class count in digits"):
        dataset_info("toy2d-moons-x")
    assert canonical_name("toy2d-spirals-3") == "toy2d-spirals-3"


def test_pick():
    assert pick("laptop", 1, 2, 3) == 2 and pick(PROFILES["paper"], 1, 2, 3) == 3
