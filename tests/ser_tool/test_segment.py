import numpy as np
import pytest

from ser_tool import ConfigError, SegmentationOptions, open_audio
from ser_tool.segment import PlannedSegment, detect_speech, plan_segments
from ser_tool.testing import SR, silence, voice


def _regions(x, **kw):
    with open_audio(x, sample_rate=SR) as src:
        return detect_speech(src, SegmentationOptions(**kw))


def test_silence_has_no_speech():
    regions, peak = _regions(silence(5.0))
    assert regions == [] and peak == 0.0


def test_quiet_noise_has_no_speech():
    noise = 0.0005 * np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32)
    assert _regions(noise)[0] == []


def test_speech_between_silences_is_found():
    x = np.concatenate([silence(2), voice(3), silence(3), voice(2, f0=220), silence(1)])
    regions, _ = _regions(x)
    assert len(regions) == 2
    (s1, e1), (s2, e2) = regions
    assert s1 == pytest.approx(2.0, abs=0.6) and e1 == pytest.approx(5.0, abs=0.6)
    assert s2 == pytest.approx(8.0, abs=0.6) and e2 == pytest.approx(10.0, abs=0.6)


def test_short_pauses_are_bridged_and_blips_dropped():
    x = np.concatenate([voice(2), silence(0.3), voice(2), silence(2), voice(0.1), silence(2)])
    regions, _ = _regions(x)
    assert len(regions) == 1 and regions[0][1] - regions[0][0] == pytest.approx(4.3, abs=0.6)


def test_energy_mode_takes_everything_above_the_floor():
    tone = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(3 * SR) / SR).astype(np.float32)
    x = np.concatenate([silence(1), tone, silence(1)])
    assert len(_regions(x, vad="energy")[0]) == 1


def _check_cover(plan, duration):
    assert plan[0].start == 0.0 and plan[-1].end == pytest.approx(duration)
    for a, b in zip(plan, plan[1:]):
        assert b.start <= a.end + 1e-6  # no holes


def test_plan_keeps_short_regions_whole_and_reports_gaps():
    opts = SegmentationOptions(window=10)
    plan = plan_segments([(1.0, 13.0), (20.0, 22.0)], 30.0, opts)
    assert [(s.start, s.end, s.speech) for s in plan] == [
        (0.0, 1.0, False), (1.0, 13.0, True), (13.0, 20.0, False), (20.0, 22.0, True), (22.0, 30.0, False)]


def test_plan_cuts_long_regions_into_windows():
    opts = SegmentationOptions(window=10)
    plan = plan_segments([(0.0, 62.0)], 62.0, opts)
    speech = [s for s in plan if s.speech]
    assert [(s.start, s.end) for s in speech] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 62)]
    _check_cover(plan, 62.0)
    plan = plan_segments([(0.0, 57.0)], 57.0, opts)
    assert [(s.start, s.end) for s in plan][-1] == (50.0, 57.0)  # a tail of 7 s (> window/2) stands alone


def test_plan_with_hop_overlaps_and_respects_model_limit():
    opts = SegmentationOptions(window=10, hop=5)
    plan = plan_segments([(0.0, 40.0)], 40.0, opts)
    starts = [s.start for s in plan]
    assert starts[:3] == [0.0, 5.0, 10.0] and all(s.duration <= 15 for s in plan)
    _check_cover(plan, 40.0)
    capped = plan_segments([(0.0, 100.0)], 100.0, SegmentationOptions(window=40), max_input_seconds=30.0)
    assert max(s.duration for s in capped) <= 30.0


@pytest.mark.parametrize("kw", [{"window": 0}, {"window": 5, "hop": 6}, {"vad": "magic"}, {"vad_aggressiveness": 5}])
def test_bad_options(kw):
    with pytest.raises(ConfigError):
        SegmentationOptions(**kw)


def test_planned_segment_duration():
    assert PlannedSegment(1.0, 3.5, True).duration == 2.5


def test_quiet_voice_is_found():
    x = np.concatenate([silence(1), voice(3, amp=0.01), silence(1)])
    regions, _ = _regions(x)
    assert len(regions) == 1 and regions[0][1] - regions[0][0] > 2.5
