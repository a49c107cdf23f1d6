"""ser_tool.aggregate: the one rule that turns several readings into one (the report's overall affect
and each transcript segment's)."""

import numpy as np
import pytest

from ser_tool.aggregate import affect_from, covered_seconds, mean_affect
from ser_tool.labels import EMOTIONS


def reading(emotion: str, p: float, dims=None, unmapped=None):
    probs = np.full(7, (1 - p) / 6)
    probs[EMOTIONS.index(emotion)] = p
    return affect_from(probs, None if dims is None else np.array(dims), unmapped, 7)


def test_weights_are_relative_and_the_top_emotion_comes_from_the_mean():
    angry, sad = reading("angry", 0.7, [0.2, 0.9, 0.8], 0.1), reading("sad", 0.9, [0.1, 0.1, 0.2], 0.3)
    one = mean_affect([angry, sad], [1.0, 3.0], 7)
    assert mean_affect([angry, sad], [10.0, 30.0], 7) == one
    p = np.array(one.probabilities.as_tuple())
    want = (np.array(angry.probabilities.as_tuple()) + 3 * np.array(sad.probabilities.as_tuple())) / 4
    np.testing.assert_allclose(p, want, atol=1e-6)
    assert one.emotion == "sad"
    assert one.confidence == pytest.approx((p.max() - 1 / 7) / (1 - 1 / 7), abs=1e-4)
    assert one.dimensions.valence == pytest.approx(0.125) and one.unmapped_probability == pytest.approx(0.25)


def test_a_part_missing_from_one_reading_is_missing_from_the_mean():
    with_dims, without = reading("angry", 0.7, [0.2, 0.9, 0.8], 0.1), reading("sad", 0.9)
    mixed = mean_affect([with_dims, without], [1.0, 1.0], 7)
    assert mixed.dimensions is None and mixed.unmapped_probability is None


@pytest.mark.parametrize("weights", [[], [0.0], [1.0, 2.0]])
def test_no_weight_is_an_error_not_a_nan(weights):
    with pytest.raises(ValueError, match="positive total weight"):
        mean_affect([reading("sad", 0.9)], weights, 7)


def test_covered_seconds_counts_overlaps_once_and_skips_empty_spans():
    assert covered_seconds([(0, 4), (2, 6), (8, 9), (5, 5), (3, 2)]) == 7.0
    assert covered_seconds([]) == 0.0
