"""The fixed class order, each dataset's codes and the Bosphorus AU table."""

import pytest

from fer3d_bench.errors import ConfigError
from fer3d_bench.taxonomy import CLASSES, class_index, load_label_map


def test_class_order_is_the_papers():
    assert CLASSES == ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    assert class_index("neutral") == 4
    with pytest.raises(ValueError, match="unknown class 'contempt'"):
        class_index("contempt")


@pytest.mark.parametrize(
    "code, label",
    [
        ("LFAU_24", "anger"),
        ("LFAU_9", "disgust"),
        ("LFAU_12", "happiness"),
        ("LFAU_15", "sadness"),
        ("UFAU_2", "surprise"),
        ("UFAU_1", "fear"),
        ("N_N", "neutral"),
        ("E_ANGER", "anger"),
        ("E_DISGUST", "disgust"),
        ("E_FEAR", "fear"),
        ("E_HAPPY", "happiness"),
        ("E_SADNESS", "sadness"),
        ("E_SURPRISE", "surprise"),
    ],
)
def test_bosphorus_table(code, label):
    assert load_label_map().decide("bosphorus", code).label == label


@pytest.mark.parametrize(
    "code, reason",
    [
        ("LFAU_12L", "suffixed action-unit variant"),
        ("LFAU_12LW", "suffixed action-unit variant"),
        ("UFAU_4", "action unit not in the AU-to-category table"),
        ("LFAU_10", "action unit not in the AU-to-category table"),
        ("CAU_A22A25", "combined action units"),
        ("YR_R10", "yaw rotation"),
        ("PR_SU", "pitch rotation"),
        ("CR_RD", "cross rotation"),
        ("O_EYE", "occlusion"),
        ("IGN_X", "IGN"),
        ("Q_Q", "scan kind 'Q' not in the label table"),
    ],
)
def test_bosphorus_exclusions_say_why(code, reason):
    decision = load_label_map().decide("bosphorus", code)
    assert decision.label is None
    assert reason in decision.reason


def test_bu3dfe_and_cald3r_codes_cover_all_classes():
    labels = load_label_map()
    assert sorted(labels.codes["bu3dfe"].values()) == sorted(CLASSES)
    assert labels.decide("bu3dfe", "HA").label == "happiness"
    assert sorted(labels.codes["cald3r-mend3s"].values()) == sorted(CLASSES)


def test_override_file_adds_and_removes_codes(tmp_path):
    override = tmp_path / "labels.toml"
    override.write_text('[bosphorus.codes]\nLFAU_12L = "happiness"\nLFAU_24 = "exclude"\n')
    labels = load_label_map(override)
    assert labels.decide("bosphorus", "LFAU_12L").label == "happiness"
    assert labels.decide("bosphorus", "LFAU_24").label is None
    assert "excluded by the label map" in labels.decide("bosphorus", "LFAU_24").reason
    assert labels.decide("bosphorus", "LFAU_9").label == "disgust"  # untouched entries stay


@pytest.mark.parametrize(
    "text, message",
    [
        ('[bosphorus.codes]\nLFAU_12L = "joy"\n', "'joy' is not a class"),
        ('classes = ["anger"]\n', "class list must be exactly"),
        ("[bosphorus.codes\n", "not a valid TOML"),
    ],
)
def test_bad_override_files(tmp_path, text, message):
    override = tmp_path / "mine.toml"
    override.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_label_map(override)


def test_missing_override_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_label_map(tmp_path / "nope.toml")
