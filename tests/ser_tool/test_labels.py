"""Label aliases and the projection of a model's own labels onto EMOTIONS."""

from __future__ import annotations

import numpy as np
import pytest

from ser_tool.backends.base import LabelProjection, softmax
from ser_tool.errors import BackendError, ModelNotAvailableError
from ser_tool.labels import EMOTIONS, canonical_emotion, label_index_map


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("neu", "neutral"),
        ("Neutral", "neutral"),
        ("calm", "neutral"),
        ("hap", "happy"),
        ("exc", "happy"),
        ("  SAD ", "sad"),
        ("ang", "angry"),
        ("fear", "fearful"),
        ("disgust", "disgusted"),
        ("Surprised", "surprised"),
        ("生气/angry", "angry"),
        ("other", None),
        ("<unk>", None),
    ],
)
def test_canonical_emotion_aliases(label, expected):
    assert canonical_emotion(label) == expected


def test_label_index_map_follows_the_given_order():
    assert label_index_map(["sad", "other", "Neutral"]) == [EMOTIONS.index("sad"), None, EMOTIONS.index("neutral")]


def test_overrides_win_are_case_insensitive_and_can_drop():
    overrides = {"OTHER": "surprised", "calm": None}
    assert canonical_emotion("other", overrides) == "surprised"
    assert canonical_emotion("Calm", overrides) is None  # would be neutral without the override
    assert canonical_emotion("hap", overrides) == "happy"  # untouched labels keep their alias


def test_override_to_unknown_emotion_is_rejected():
    with pytest.raises(ValueError, match="not one of"):
        canonical_emotion("rage", {"rage": "furious"})


def test_several_labels_onto_one_emotion_add_up():
    projection = LabelProjection.from_labels(["calm", "neutral", "happy"])
    raw = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    probabilities, unmapped = projection.project(raw)
    assert unmapped is None
    assert projection.emotions_supported == ("neutral", "happy")
    np.testing.assert_allclose(probabilities[:, EMOTIONS.index("neutral")], [0.5, 0.2])
    np.testing.assert_allclose(probabilities[:, EMOTIONS.index("happy")], [0.5, 0.8])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_unmapped_labels_are_dropped_renormalised_and_reported():
    projection = LabelProjection.from_labels(["neu", "hap", "other"])
    assert projection.has_unmapped
    raw = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    probabilities, unmapped = projection.project(raw)
    np.testing.assert_allclose(unmapped, [0.5, 0.1])
    np.testing.assert_allclose(probabilities[0, [EMOTIONS.index("neutral"), EMOTIONS.index("happy")]], [0.4, 0.6])
    np.testing.assert_allclose(probabilities[1, [EMOTIONS.index("neutral"), EMOTIONS.index("happy")]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    others = [i for i, e in enumerate(EMOTIONS) if e not in ("neutral", "happy")]
    assert np.all(probabilities[:, others] == 0.0)


def test_a_row_with_all_mass_unmapped_is_uniform_over_supported_emotions():
    projection = LabelProjection.from_labels(["neu", "sad", "other"])
    probabilities, unmapped = projection.project(np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(unmapped, [1.0])
    np.testing.assert_allclose(probabilities[0, EMOTIONS.index("neutral")], 0.5)
    np.testing.assert_allclose(probabilities[0, EMOTIONS.index("sad")], 0.5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_overrides_apply_to_projection():
    projection = LabelProjection.from_labels(["neu", "joy", "other"], {"other": "surprised", "neu": None})
    assert projection.emotions_supported == ("happy", "surprised")
    probabilities, unmapped = projection.project(np.array([[0.5, 0.25, 0.25]]))
    np.testing.assert_allclose(unmapped, [0.5])
    np.testing.assert_allclose(probabilities[0, EMOTIONS.index("happy")], 0.5)
    np.testing.assert_allclose(probabilities[0, EMOTIONS.index("surprised")], 0.5)


def test_nothing_maps_is_an_error_that_says_what_to_do():
    with pytest.raises(ModelNotAvailableError, match="label map"):
        LabelProjection.from_labels(["LABEL_0", "LABEL_1"])


def test_projection_rejects_a_score_count_that_does_not_match_the_labels():
    projection = LabelProjection.from_labels(["neu", "hap"])
    with pytest.raises(BackendError, match="3 scores"):
        projection.project(np.full((1, 3), 1 / 3))


def test_emotions_supported_is_in_emotions_order():
    projection = LabelProjection.from_labels(["Surprised", "Happy", "Neutral"])
    assert projection.emotions_supported == ("neutral", "happy", "surprised")


def test_softmax_rows_sum_to_one_and_survive_large_logits():
    p = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
