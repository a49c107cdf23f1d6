import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from ser_tool import (
    SAMPLE_RATE,
    AudioDecodeError,
    AudioError,
    AudioLimits,
    AudioNotFoundError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidAudioError,
    load_audio,
    open_audio,
)
from ser_tool.testing import SR, silence, voice


def _reference(seconds=2.0, sr=SR):
    return np.concatenate([voice(seconds / 2, sr=sr), voice(seconds / 2, f0=220, sr=sr)])


@pytest.mark.parametrize(
    "fmt,subtype,ext,lossless",
    [
        ("WAV", "PCM_16", "wav", True),
        ("WAV", "FLOAT", "wav", True),
        ("FLAC", "PCM_16", "flac", True),
        ("OGG", "VORBIS", "ogg", False),
        ("OGG", "OPUS", "opus", False),
        ("MP3", "MPEG_LAYER_III", "mp3", False),
    ],
)
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_formats_rates_channels_become_16k_mono_float32(tmp_path, fmt, subtype, ext, lossless, rate, channels):
    if subtype == "OPUS" and rate not in (8000, 16000, 48000):
        pytest.skip("Opus only encodes 8/12/16/24/48 kHz")
    x = _reference(sr=rate)
    data = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
    path = tmp_path / f"a.{ext}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 2.0 * SAMPLE_RATE) <= 0.1 * SAMPLE_RATE  # codecs may pad a little
    expected = load_audio(x * (0.75 if channels == 2 else 1.0), sample_rate=rate)
    n = min(len(y), len(expected))
    if lossless:
        assert np.corrcoef(y[:n], expected[:n])[0, 1] > 0.99
    else:  # lossy codecs shift and smear; the energy must still be there
        assert 0.3 < np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(expected**2)) < 3


def test_bytes_and_path_agree(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _reference(sr=22050), 22050)
    assert np.array_equal(load_audio(path.read_bytes()), load_audio(path))


@pytest.mark.parametrize("dtype,scale", [(np.int16, 32767), (np.int32, 2**31 - 1), (np.float64, 1.0)])
def test_numpy_input_types_are_scaled(dtype, scale):
    x = _reference()
    y = load_audio((x * scale).astype(dtype), sample_rate=SR)
    assert y.dtype == np.float32
    assert np.allclose(y, x, atol=1e-3)


def test_numpy_channel_layouts_and_resampling():
    x = _reference(sr=48000)
    a = load_audio(np.stack([x, x]), sample_rate=48000)  # (channels, n)
    b = load_audio(np.stack([x, x], axis=1), sample_rate=48000)  # (n, channels)
    assert np.allclose(a, b) and abs(len(a) - 2 * SR) <= 1


@pytest.mark.parametrize("kept_whole", [True, False], ids=["decoded-once", "decoded-per-read"])
def test_streamed_reads_match_whole_decode(tmp_path, monkeypatch, kept_whole):
    from ser_tool.audio import _SoundFileAudio

    if not kept_whole:  # as a recording longer than the whole-decoding limit is read
        monkeypatch.setattr(_SoundFileAudio, "WHOLE_SECONDS", 10.0)
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate([_reference(sr=44100)] * 20), 44100)  # 40 s at 44.1 kHz
    whole = load_audio(path)
    with open_audio(path) as src:
        part = src.read(SR * 17, SR * 19)
        blocks = [b for _, b in src.blocks(block_samples=SR * 7)]
    mid = whole[SR * 17: SR * 19]
    assert len(part) == len(mid) and np.max(np.abs(part[100:-100] - mid[100:-100])) < 1e-3
    assert sum(len(b) for b in blocks) == src.num_samples == len(whole)


def test_a_short_recording_is_decoded_once_and_a_long_one_once_through_a_spill_file(tmp_path, monkeypatch):
    """Up to WHOLE_SECONDS, the first read decodes the whole recording and every later read (the speech scan's
    blocks, the model's windows) is served from it. A longer recording decodes each block of its first pass (the
    speech scan) and keeps them in a temporary file; the model's windows are read back from it, not decoded again."""
    from ser_tool.audio import _SoundFileAudio

    decoded = []
    real = _SoundFileAudio._read
    monkeypatch.setattr(_SoundFileAudio, "_read", lambda self, a, b: decoded.append((a, b)) or real(self, a, b))
    path = tmp_path / "a.ogg"
    sf.write(path, voice(12.0), SR, format="OGG", subtype="OPUS")
    with open_audio(path) as src:
        blocks = [b for _, b in src.blocks(block_samples=SR * 5)]
        window = src.read(SR * 2, SR * 4)
        window[:] = 0  # a caller's copy: changing it changes nothing kept
        assert np.array_equal(src.read(SR * 2, SR * 4), np.concatenate(blocks)[SR * 2: SR * 4])
    assert decoded == [(0, src.num_samples)]
    decoded.clear()
    monkeypatch.setattr(_SoundFileAudio, "WHOLE_SECONDS", 10.0)
    with open_audio(path) as src:
        early = src.read(SR * 1, SR * 3)  # before any pass: decoded where it is
        blocks = [b for _, b in src.blocks(block_samples=SR * 5)]
        window = src.read(SR * 2, SR * 4)
        tail = src.read(SR * 11, SR * 99)  # clipped to the recording, as a decoded read is
        again = [b for _, b in src.blocks(block_samples=SR * 5)]  # a second pass reads the spill too
        spill = src._spill
    assert decoded == [(SR * 1, SR * 3), (0, SR * 5), (SR * 5, SR * 10), (SR * 10, src.num_samples)]
    joined = np.concatenate(blocks)
    assert np.array_equal(window, joined[SR * 2: SR * 4]) and np.array_equal(tail, joined[SR * 11:])
    assert np.array_equal(np.concatenate(again), joined)
    assert np.max(np.abs(early - joined[SR * 1: SR * 3])) < 1e-2  # Opus after a seek: close, not bit for bit
    window[:] = 0  # a caller's copy
    assert spill.closed  # closing the source removes its spill file


def test_a_long_recording_is_decoded_again_where_its_spill_file_cannot_be_written(tmp_path, monkeypatch):
    """No space for the spill file (or none can be made): every read decodes, with the same samples."""
    import ser_tool.audio as audio_mod
    from ser_tool.audio import _SoundFileAudio

    path = tmp_path / "a.ogg"
    sf.write(path, voice(12.0), SR, format="OGG", subtype="OPUS")
    monkeypatch.setattr(_SoundFileAudio, "WHOLE_SECONDS", 10.0)
    with open_audio(path) as src:
        reference = np.concatenate([b for _, b in src.blocks(block_samples=SR * 5)])

    class Full:
        closed = False

        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            self.closed = True

    for make in (Full, lambda: (_ for _ in ()).throw(OSError(13, "Permission denied"))):
        monkeypatch.setattr(audio_mod, "_spill_file", make)
        decoded = []
        real = _SoundFileAudio._read
        monkeypatch.setattr(_SoundFileAudio, "_read", lambda self, a, b: decoded.append((a, b)) or real(self, a, b))
        with open_audio(path) as src:
            assert np.array_equal(np.concatenate([b for _, b in src.blocks(block_samples=SR * 5)]), reference)
            decoded_again = src.read(SR * 2, SR * 4)
            assert np.max(np.abs(decoded_again - reference[SR * 2: SR * 4])) < 1e-2 and src._spill is None
        assert decoded[-1] == (SR * 2, SR * 4)
        monkeypatch.setattr(_SoundFileAudio, "_read", real)


# --- bad input: each is a specific AudioError with a message that says what to do --------------

def test_missing_file(tmp_path):
    with pytest.raises(AudioNotFoundError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioNotFoundError, match="is a directory"):
        load_audio(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty file"):
        load_audio(p)


def test_zero_length_audio(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(p)


def test_text_renamed_to_wav(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio, just text\n" * 50)
    with pytest.raises(AudioDecodeError, match="not an audio file"):
        load_audio(p)


def test_truncated_file(tmp_path):
    p = tmp_path / "cut.flac"
    sf.write(p, _reference(), SR, format="FLAC")
    p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(AudioError):
        load_audio(p)


def test_nan_and_inf_samples(tmp_path):
    x = _reference()
    x[1000] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="NaN or infinite"):
        load_audio(p)
    x[1000] = np.inf
    with pytest.raises(InvalidAudioError, match="NaN or infinite"):
        load_audio(x, sample_rate=SR)


def test_too_long_is_refused_before_decoding(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, silence(3.0), SR)
    with pytest.raises(AudioTooLongError, match="limit is 0:02"):
        open_audio(p, limits=AudioLimits(max_duration=2.0))
    with pytest.raises(AudioTooLongError):
        load_audio(silence(3.0), sample_rate=SR, limits=AudioLimits(max_duration=2.0))


def test_three_hour_file_is_refused_by_default(tmp_path):
    # A 3-hour file (8 kHz 8-bit keeps it at 86 MB on disk); only its header is read.
    p = tmp_path / "three_hours.wav"
    with sf.SoundFile(p, "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        block = np.zeros(8000 * 600, dtype=np.float32)
        for _ in range(18):
            f.write(block)
    with pytest.raises(AudioTooLongError, match="3:00:00 long"):
        open_audio(p)


def test_too_large_is_refused(tmp_path):
    p = tmp_path / "big.wav"
    sf.write(p, _reference(), SR)
    with pytest.raises(AudioTooLargeError, match="MiB"):
        open_audio(p, limits=AudioLimits(max_file_bytes=1000))
    with pytest.raises(AudioTooLargeError):
        open_audio(p.read_bytes(), limits=AudioLimits(max_file_bytes=1000))


def test_fifo_is_refused_without_hanging(tmp_path):
    p = tmp_path / "pipe.wav"
    os.mkfifo(p)
    with pytest.raises(AudioNotFoundError, match="not a regular file"):
        load_audio(p)


def test_wrong_types():
    with pytest.raises(InvalidAudioError, match="cannot read audio from a list"):
        load_audio([0.0, 0.1])
    with pytest.raises(InvalidAudioError, match="needs its sample rate"):
        load_audio(np.zeros(100, dtype=np.float32))
    with pytest.raises(InvalidAudioError, match="integers or floats"):
        load_audio(np.zeros(100, dtype=complex), sample_rate=SR)
    with pytest.raises(EmptyAudioError):
        load_audio(b"")


needs_ffmpeg_mp3 = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed: no real MP3 encoder")
# The MP3 variants players meet: ID3v2.3 tag + Xing header (CBR), VBR (Xing with a TOC), neither tag nor Xing
# header (length estimated), and 44.1 kHz stereo.
MP3_VARIANTS = {
    "id3-xing-cbr": ["-ar", "16000", "-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "3", "-write_xing", "1",
                     "-metadata", "title=Test"],
    "vbr": ["-ar", "16000", "-c:a", "libmp3lame", "-q:a", "4"],
    "bare": ["-ar", "16000", "-c:a", "libmp3lame", "-b:a", "32k", "-id3v2_version", "0", "-write_xing", "0"],
    "stereo-44k": ["-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-q:a", "2"],
}


def _mp3(tmp_path, name: str, seconds: float = 40.0):
    import subprocess

    wav = tmp_path / f"{name}.wav"
    sf.write(wav, np.concatenate([np.concatenate([voice(4.0, f0=120 + 10 * i), silence(1.0)]) for i in range(int(seconds // 5))]), SR)
    mp3 = tmp_path / f"{name}.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *MP3_VARIANTS[name], str(mp3)], check=True)
    return mp3


@needs_ffmpeg_mp3
@pytest.mark.parametrize("variant", list(MP3_VARIANTS))
def test_a_good_mp3_decodes_without_a_word_on_stderr(tmp_path, capfd, variant):
    """libmpg123 (inside libsndfile) printed '[src/libmpg123/layer3.c:...] error: part2_3_length ... too large'
    after seeks on good files, straight to fd 2; the whole analysis path (open, scan in blocks, window reads)
    must leave the terminal to us. capfd captures at the file-descriptor level, where those lines land."""
    from ser_tool.testing import FakeBackend
    from ser_tool import AnalysisOptions, Analyzer, SegmentationOptions

    path = _mp3(tmp_path, variant)
    capfd.readouterr()
    report = Analyzer(FakeBackend(), AnalysisOptions(segmentation=SegmentationOptions(window=3.0))).analyze(path)
    with open_audio(path) as src:  # and reads in any order (each one a seek)
        for start in range(src.num_samples - SR, 0, -SR * 3):
            src.read(start, start + SR)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    assert report.duration == pytest.approx(40.0, abs=0.2) and report.speech_duration > 25


def test_the_decoders_stderr_is_dropped_and_anything_else_passed_on(capfd):
    from ser_tool.audio import decoder_stderr_captured

    with decoder_stderr_captured():
        with decoder_stderr_captured():  # nested (and concurrent) users share one capture
            os.write(2, b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (2272) too large\n")
        os.write(2, b"another thread's log line\n")
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 1234.\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "another thread's log line\nafter\n"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed: the m4a fallback cannot be exercised")
def test_ffmpeg_fallback_for_m4a(tmp_path):
    import subprocess

    wav, m4a = tmp_path / "a.wav", tmp_path / "a.m4a"
    sf.write(wav, _reference(), SR)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    y = load_audio(m4a)
    assert y.dtype == np.float32 and abs(len(y) - 2 * SR) < 0.2 * SR
