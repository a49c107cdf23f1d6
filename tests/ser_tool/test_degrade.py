"""Degraded training variants (noise, room, telephone band) for the voice head: made once, cached apart."""

import numpy as np
import pytest
import soundfile as sf

from ser_tool.representations import FeatureCache, load_representation
from ser_tool.representations.degrade import DegradedRepresentation, degrade
from ser_tool.testing import SR, voice
from ser_tool.train.voice import ClipFeatures, training_set


def test_degrade_keeps_length_and_level_and_changes_the_signal():
    x = voice(2.0, amp=0.2)
    for seed in range(6):
        y = degrade(x, np.random.default_rng(seed))
        assert y.dtype == np.float32 and len(y) == len(x)
        gain_db = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2))
        assert -3.0 <= gain_db <= 6.0  # about the voice's power: noise 0-20 dB below it (low-frequency noise adds unevenly)
        assert np.corrcoef(x, y)[0, 1] < 0.999  # not the clean clip
    silent = np.zeros(SR, dtype=np.float32)
    np.testing.assert_array_equal(degrade(silent, np.random.default_rng(0)), silent)


def test_a_variant_is_the_same_draw_every_time_and_variants_differ():
    rep = load_representation("prosody")
    x = voice(1.5)
    one, again, two = DegradedRepresentation(rep, 1), DegradedRepresentation(rep, 1), DegradedRepresentation(rep, 2)
    np.testing.assert_array_equal(one.features(x).frames, again.features(x).frames)
    assert not np.array_equal(one.features(x).frames, two.features(x).frames)
    assert len({rep.id, one.id, two.id}) == 3 and one.name == rep.name and one.frame_dim == rep.frame_dim
    with pytest.raises(ValueError, match="numbered from 1"):
        DegradedRepresentation(rep, 0)


def test_training_set_adds_cached_variants(tmp_path):
    from ser_tool.data import Clip

    clips = []
    for i, label in enumerate(("angry", "sad", "neutral")):
        path = tmp_path / f"{i}.wav"
        sf.write(path, voice(1.2, f0=100 + 40 * i, amp=0.05 + 0.1 * i), SR)
        clips.append(Clip(path, "toy", label, speaker=f"s{i}"))
    cache = FeatureCache(tmp_path / "cache")
    feats = ClipFeatures(cache, [load_representation("prosody")])
    plain = training_set(feats, clips, ["prosody"])
    doubled = training_set(feats, clips, ["prosody"], variants=2)
    assert len(plain) == 3 and len(doubled) == 9
    assert list(doubled.labels) == list(plain.labels) * 3 and list(doubled.corpora) == ["toy"] * 9
    assert not np.array_equal(doubled.frames[0], doubled.frames[3])  # variant 1 of clip 0 is not clip 0
    misses = cache.misses
    training_set(ClipFeatures(cache, [load_representation("prosody")]), clips, ["prosody"], variants=2)
    assert cache.misses == misses  # a second run reads every variant from the cache


def test_levelled_features_do_not_follow_the_recording_gain():
    """Training features at the voice backend's input level: a clip recorded 12 dB quieter gives the same features."""
    from ser_tool.representations import Features
    from ser_tool.representations.degrade import LevelledRepresentation

    class Loudness:  # a representation that hears nothing but the level (as a log-mel partly does)
        name, id, frame_dim, utterance_dim = "loudness", "loudness-v1", 1, 1

        def features(self, wave):
            rms = np.sqrt(np.mean(np.asarray(wave, dtype=np.float64) ** 2))
            return Features(np.array([[rms]], dtype=np.float32), np.array([rms], dtype=np.float32))

    rep = Loudness()
    levelled = LevelledRepresentation(rep, -26.0)
    x = voice(1.5, amp=0.2)
    assert levelled.id == "loudness-v1+level-26" and levelled.name == rep.name
    np.testing.assert_allclose(levelled.features(x * 0.25).frames, levelled.features(x).frames, rtol=1e-4)
    assert rep.features(x * 0.25).frames[0, 0] == pytest.approx(rep.features(x).frames[0, 0] / 4, rel=1e-4)
