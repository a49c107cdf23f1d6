"""Security issue 9, decoder part: replays of the campaign's attacks on the audio decoder.

- playlists (HLS) and concat scripts must never make ffmpeg read another file, sent as bytes, as a
  path or as an open file object (before the fix an HLS playlist returned the target's audio);
- a header that hides the real length must not let decoding run past the duration limit;
- every failure inside a decoder is an AudioError whose message names the source by its label only;
- an open file object is decoded from its descriptor, never reopened by name;
- a truncated file is analysed as far as it decodes, with a warning.
"""

import io
import os
import shutil
import subprocess
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import ser_tool.audio as audio_mod
from ser_tool import (
    AnalysisOptions,
    Analyzer,
    AudioDecodeError,
    AudioError,
    AudioLimits,
    AudioTooLargeError,
    AudioTooLongError,
    InvalidAudioError,
    SegmentationOptions,
    load_audio,
    open_audio,
)
from ser_tool.console import error_message
from ser_tool.testing import SR, FakeBackend, voice

HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed: the ffmpeg fallback cannot be exercised")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def _wav(path, seconds=2.0):
    sf.write(path, voice(seconds), SR)
    return path


def _encode(tmp_path, name: str, seconds: float, *ffmpeg_args: str):
    """Encode a voice-like clip with ffmpeg (native encoders only, so any ffmpeg build has them)."""
    src = _wav(tmp_path / f"src_{name}.wav", seconds)
    out = tmp_path / name
    _ffmpeg("-i", str(src), *ffmpeg_args, str(out))
    return out


def _as(kind: str, path):
    """The same attack as bytes, as a path or as an open file object."""
    if kind == "bytes":
        return path.read_bytes()
    if kind == "path":
        return path
    return open(path, "rb")  # noqa: SIM115 - closed by the test via _close


def _close(obj) -> None:
    if hasattr(obj, "close"):
        obj.close()


# --- finding 1: playlists and concat scripts ------------------------------------------------------

@pytest.fixture
def secret(tmp_path):
    """A real, decodable audio file the attacker wants to read (MP3, 6 s)."""
    p = tmp_path / "secret.mp3"
    sf.write(p, voice(6.0), SR, format="MP3")
    assert abs(len(load_audio(p)) - 6 * SR) < 0.2 * SR  # the target itself is readable audio
    return p


def _attacks(tmp_path, secret):
    return {
        "hls_absolute": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n{secret}\n#EXT-X-ENDLIST\n",
        "hls_relative": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n{secret.name}\n#EXT-X-ENDLIST\n",
        "hls_file_url": f"#EXTM3U\n#EXTINF:6.0,\nfile://{secret}\n#EXT-X-ENDLIST\n",
        "ffconcat_relative": f"ffconcat version 1.0\nfile '{secret.name}'\n",
        "ffconcat_absolute": f"ffconcat version 1.0\nfile '{secret}'\n",
        # wrapped behind magic bytes of allowed containers: the forced demuxer must not interpret them
        "hls_behind_ftyp": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + f"#EXTM3U\n#EXTINF:6.0,\n{secret}\n".encode(),
        "hls_behind_id3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + f"#EXTM3U\n#EXTINF:6.0,\n{secret}\n".encode(),
    }


@pytest.mark.parametrize("kind", ["bytes", "path", "file object"])
def test_playlists_and_concat_scripts_never_read_another_file(tmp_path, secret, kind):
    for name, text in _attacks(tmp_path, secret).items():
        p = tmp_path / f"{name}.m3u8"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        audio = _as(kind, p)
        try:
            # Before the fix the HLS forms returned the secret's 6 s of audio here.
            with pytest.raises(AudioDecodeError) as err:
                load_audio(audio)
        finally:
            _close(audio)
        message = str(err.value)
        assert "0x" not in message and "BytesIO" not in message, message
        assert str(secret) not in message, f"{name}: the message reveals the target's path"


@needs_ffmpeg
@pytest.mark.parametrize("demuxer", sorted(audio_mod._DEMUXERS))
def test_even_a_missniffed_playlist_cannot_reach_another_file(tmp_path, secret, monkeypatch, demuxer):
    """Defence in depth: if the sniffer ever let a playlist through, ffmpeg still only sees the pipe."""
    monkeypatch.setattr(audio_mod, "_sniff_container", lambda read_at: demuxer)
    attacks = _attacks(tmp_path, secret)
    for name in ("hls_absolute", "ffconcat_relative"):
        text = attacks[name]
        data = text if isinstance(text, bytes) else text.encode()
        try:
            y = load_audio(data)
        except AudioError:
            continue
        assert len(y) < SR, f"{name} through the {demuxer} demuxer decoded {len(y) / SR:.1f} s: it reached the target"


def test_ffmpeg_command_is_pinned_to_the_pipe_and_an_allowed_demuxer():
    cmd = audio_mod._ffmpeg_command("ffmpeg", "mov", 10.0)
    assert cmd[cmd.index("-protocol_whitelist") + 1] == "pipe"
    assert cmd[cmd.index("-i") + 1] == "pipe:0"
    assert cmd[cmd.index("-f") + 1] == "mov" and cmd.index("-f") < cmd.index("-i")  # forced input format
    assert "-nostdin" in cmd and "-t" in cmd and cmd[-1] == "pipe:1"
    assert cmd[cmd.index("-enable_drefs") + 1] == "0"
    for banned in ("hls", "concat", "image2", "sdp", "tty", "mpegts", "webm_dash_manifest"):
        assert banned not in audio_mod._DEMUXERS
        with pytest.raises(AudioDecodeError):
            audio_mod._ffmpeg_command("ffmpeg", banned, 10.0)


@pytest.mark.parametrize("data", [
    b"#EXTM3U\n", b"ffconcat version 1.0\n", b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\n",  # SDP
    b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"<?xml version='1.0'?><MPD/>", b"\x47" + b"\0" * 187 + b"\x47" + b"\0" * 187,  # MPEG-TS
])
def test_non_audio_containers_are_refused_without_running_ffmpeg(data, monkeypatch):
    def no_ffmpeg(*a, **k):
        raise AssertionError("ffmpeg must not be started for this input")

    monkeypatch.setattr(audio_mod.subprocess, "Popen", no_ffmpeg)
    with pytest.raises(AudioDecodeError, match="not an audio file"):
        load_audio(data)


# --- finding 3: hidden duration (memory bomb) ------------------------------------------------------

def _hide_matroska_duration(data: bytes, ms: float = 1000.0) -> bytes:
    """Rewrite a Matroska Segment Duration (ID 0x4489, 8-byte float) to claim `ms` milliseconds."""
    i = data.find(b"\x44\x89\x88")
    assert i > 0, "no 8-byte Duration element found"
    return data[: i + 3] + np.array([ms], ">f8").tobytes() + data[i + 11:]


@needs_ffmpeg
def test_hidden_duration_is_refused_at_the_limit_with_bounded_memory(tmp_path):
    mkv = _encode(tmp_path, "long.mka", 60.0, "-c:a", "aac", "-b:a", "24k", "-f", "matroska")
    data = _hide_matroska_duration(mkv.read_bytes())
    probe = subprocess.run(["ffmpeg", "-hide_banner", "-f", "matroska", "-i", "pipe:0"], input=data, capture_output=True)
    assert b"Duration: 00:00:01.00" in probe.stderr  # the header now claims 1 s for 60 s of audio
    limits = AudioLimits(max_duration=5.0)
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError, match=r"longer than the limit of 0:05.*raise the limit") as info:
            open_audio(data, limits=limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "--max-duration" in error_message(info.value)  # the CLI words the hint as its flag
    # 60 s decoded would be 3.8 MB of float32; stopping at the limit (5 s + margin) keeps it under 1 MB.
    assert peak < 2_000_000, f"decoding went past the limit: peak {peak / 1e6:.1f} MB"
    # a limit above the real length decodes it all: the refusal above came from counting, not from the header
    with open_audio(data, limits=AudioLimits(max_duration=100.0)) as src:
        assert abs(src.duration - 60.0) < 0.5


@needs_ffmpeg
def test_long_streams_are_counted_before_they_are_kept(tmp_path, monkeypatch):
    """Past KEEP_FIRST_PASS the output is counted, not kept: the attack costs no memory whatever the limit."""
    monkeypatch.setattr(audio_mod, "KEEP_FIRST_PASS", 2.0)
    mkv = _encode(tmp_path, "long.mka", 40.0, "-c:a", "aac", "-b:a", "24k", "-f", "matroska")
    data = _hide_matroska_duration(mkv.read_bytes())
    tracemalloc.start()
    try:
        with pytest.raises(AudioTooLongError):
            open_audio(data, limits=AudioLimits(max_duration=30.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak / 1e6:.1f} MB kept; 30 s of audio is 1.9 MB"
    # within the limit: counted, then decoded again and kept - the same samples as a single pass
    with open_audio(data, limits=AudioLimits(max_duration=60.0)) as src:
        two_pass = src.read(0, src.num_samples)
    monkeypatch.setattr(audio_mod, "KEEP_FIRST_PASS", 600.0)
    assert np.array_equal(two_pass, load_audio(data)) and abs(len(two_pass) - 40 * SR) < 0.2 * SR


@needs_ffmpeg
def test_stream_without_duration_is_counted(tmp_path):
    adts = _encode(tmp_path, "long.aac", 20.0, "-c:a", "aac", "-f", "adts")
    with pytest.raises(AudioTooLongError, match="limit"):
        open_audio(adts, limits=AudioLimits(max_duration=5.0))
    assert abs(len(load_audio(adts)) - 20 * SR) < 0.2 * SR


@needs_ffmpeg
def test_honest_long_header_is_refused_without_decoding(tmp_path):
    m4a = _encode(tmp_path, "long.m4a", 20.0, "-c:a", "aac")
    with pytest.raises(AudioTooLongError, match="is 0:20 long; the limit is 0:05"):
        open_audio(m4a, limits=AudioLimits(max_duration=5.0))


def test_libsndfile_reads_are_bounded_by_the_header_length(tmp_path):
    """A WAV whose data chunk claims less than the file holds is read only as far as the header says."""
    x = voice(4.0)
    p = tmp_path / "short_header.wav"
    sf.write(p, x, SR, subtype="PCM_16")
    data = bytearray(p.read_bytes())
    i = data.find(b"data")
    data[i + 4: i + 8] = (SR * 2 * 1).to_bytes(4, "little")  # claims 1 s of the 4 s present
    with open_audio(bytes(data)) as src:
        assert src.duration == pytest.approx(1.0)
        assert sum(len(b) for _, b in src.blocks()) == SR
        assert len(src.read(0, 4 * SR)) == SR


# --- finding 8: every decoder failure is a clean AudioError ---------------------------------------

def _wav_header(rate=SR, channels=1, bits=16, n_frames=1600, fmt=1) -> bytes:
    import struct

    pcm = bytes(n_frames * channels * 2)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * channels * 2, channels * 2, bits)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


@pytest.mark.parametrize("data,expect", [
    (_wav_header(rate=0), AudioDecodeError),  # was ZeroDivisionError
    (_wav_header(rate=1), AudioDecodeError),
    (_wav_header(rate=2_000_000_000), AudioDecodeError),
    (_wav_header(channels=0), AudioDecodeError),
    (_wav_header(channels=5000, n_frames=2), AudioDecodeError),
    (_wav_header(bits=0), AudioDecodeError),
    (_wav_header(fmt=0x1234), AudioDecodeError),
    (bytes(range(256)) * 40, AudioDecodeError),
    (b"OggS" + bytes(3000), AudioDecodeError),
    (b"\x1a\x45\xdf\xa3" + bytes(range(200)) * 10, AudioDecodeError),
])
def test_malformed_headers_are_decode_errors_without_internals(data, expect):
    if not HAS_FFMPEG and data[:4] in (b"OggS", b"\x1a\x45\xdf\xa3"):
        expect = AudioDecodeError  # refused with "needs ffmpeg" instead; still a decode error
    with pytest.raises(expect) as err:
        load_audio(data)
    message = str(err.value)
    assert message.startswith("<bytes>")
    assert "0x7f" not in message and "object at" not in message and "Traceback" not in message


def test_error_names_the_source_by_label_only(tmp_path):
    p = tmp_path / "deep" / "secret-dir"
    p.mkdir(parents=True)
    f = p / "clip.wav"
    f.write_text("not audio at all\n" * 20)
    with open(f, "rb") as fh, pytest.raises(AudioDecodeError) as err:
        open_audio(fh, name="clip.wav")
    assert "secret-dir" not in str(err.value) and str(err.value).startswith("clip.wav ")


def test_fuzzed_files_raise_only_audio_errors(tmp_path):
    """Random damage to real files: decoded (maybe with a warning) or an AudioError, never anything else."""
    rng = np.random.default_rng(7)
    bases = []
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", None), ("OGG", "OPUS"), ("MP3", None)):
        b = io.BytesIO()
        sf.write(b, voice(1.5), SR, format=fmt, subtype=subtype)
        bases.append(b.getvalue())
    if HAS_FFMPEG:
        bases.append(_encode(tmp_path, "a.m4a", 1.5, "-c:a", "aac", "-movflags", "+faststart").read_bytes())
    for i in range(25):
        data = bytearray(bases[i % len(bases)])
        for pos in rng.integers(0, len(data), size=rng.integers(1, 12)):
            data[pos] = int(rng.integers(0, 256))
        if i % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        try:
            with open_audio(bytes(data)) as src:
                for _ in src.blocks():
                    pass
        except AudioError:
            pass


def test_path_with_nul_character():
    with pytest.raises(AudioError, match="not a valid file path"):
        load_audio("clip\x00.wav")


def test_numpy_rates_that_cannot_be_resampled_are_clean_errors():
    with pytest.raises(InvalidAudioError, match="sample rate"):
        load_audio(np.zeros(100, dtype=np.float32), sample_rate=float("nan"))
    with pytest.raises(InvalidAudioError, match="sample rate"):
        load_audio(np.zeros(100, dtype=np.float32), sample_rate=float("inf"))


# --- the ffmpeg fallback still decodes real containers ---------------------------------------------

@needs_ffmpeg
@pytest.mark.parametrize("name,args", [
    ("a.m4a", ("-c:a", "aac")),  # moov at the end: reordered for the pipe
    ("b.m4a", ("-c:a", "aac", "-movflags", "+faststart")),
    ("c.mka", ("-c:a", "aac", "-f", "matroska")),
    ("d.aac", ("-c:a", "aac", "-f", "adts")),
    ("e.wma", ("-c:a", "wmav2")),
    ("f.m4a", ("-c:a", "alac")),
])
def test_ffmpeg_fallback_decodes_containers(tmp_path, name, args):
    path = _encode(tmp_path, name, 30.0, *args)
    if name == "a.m4a":  # moov after mdat, too far for ffmpeg to seek back in a pipe: must be reordered
        data = path.read_bytes()
        assert data.find(b"moov") > data.find(b"mdat") > 0 and len(data) > 150_000
    for kind in ("bytes", "path", "file object"):
        audio = _as(kind, path)
        try:
            with open_audio(audio) as src:
                assert abs(src.duration - 30.0) < 0.2, (name, kind, src.duration)
                assert src.warnings == []
                y = src.read(0, src.num_samples)
                assert y.dtype == np.float32 and 0.01 < np.sqrt(np.mean(y ** 2)) < 0.5
        finally:
            _close(audio)


@needs_ffmpeg
def test_webm_opus_when_the_encoder_exists(tmp_path):
    try:
        path = _encode(tmp_path, "a.webm", 3.0, "-c:a", "libopus")
    except subprocess.CalledProcessError:
        pytest.skip("this ffmpeg has no libopus encoder")
    assert abs(len(load_audio(path)) - 3 * SR) < 0.1 * SR


def test_missing_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_mod, "_ffmpeg_binary", lambda: None)
    m4a_head = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42" + bytes(200)
    with pytest.raises(AudioDecodeError, match="needs ffmpeg.*install ffmpeg"):
        load_audio(m4a_head)


def test_ffmpeg_that_hangs_is_stopped(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('sleep') or '/bin/sleep'} 30\n")
    fake.chmod(0o755)
    monkeypatch.setattr(audio_mod, "_ffmpeg_binary", lambda: str(fake))
    monkeypatch.setattr(audio_mod, "FFMPEG_TIMEOUT", 1.0)
    with pytest.raises(AudioDecodeError, match="did not finish"):
        load_audio(b"\x00\x00\x00\x18ftypM4A " + bytes(500_000))


def test_ffmpeg_that_fails_or_outputs_nothing_is_a_decode_error(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho '[error] something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(audio_mod, "_ffmpeg_binary", lambda: str(fake))
    with pytest.raises(AudioDecodeError, match="decoded no audio from it .something broke"):
        load_audio(b"\x00\x00\x00\x18ftypM4A " + bytes(1000))


# --- decoding from an open file object (the open-once sandbox builds on this) ----------------------

@pytest.mark.parametrize("fmt", ["wav", "m4a"])
def test_file_object_is_decoded_from_its_descriptor_not_by_name(tmp_path, fmt):
    if fmt == "m4a" and not HAS_FFMPEG:
        pytest.skip("ffmpeg is not installed")
    path = _wav(tmp_path / "clip.wav", 3.0) if fmt == "wav" else _encode(tmp_path, "clip.m4a", 3.0, "-c:a", "aac")
    expected = len(load_audio(path))
    with open(path, "rb") as f:
        f.read(100)  # the position does not matter: the whole file is decoded
        # swap the name for a playlist after opening: only the opened file may be decoded
        os.replace(path, tmp_path / "moved")
        path.write_text("#EXTM3U\n#EXTINF:1,\n/etc/passwd\n")
        with open_audio(f, name="clip") as src:
            assert src.name == "clip" and src.num_samples == expected
            first = [b.copy() for _, b in src.blocks(block_samples=SR)]
            again = [b for _, b in src.blocks(block_samples=SR)]  # the analyzer streams, then ASR reads again
            whole = src.read(0, src.num_samples)
        assert not f.closed  # the caller owns it
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.array_equal(np.concatenate(first), whole)


def test_fdopen_bytesio_and_pipe_file_objects(tmp_path):
    path = _wav(tmp_path / "clip.wav", 2.0)
    expected = load_audio(path)
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        assert np.array_equal(load_audio(f), expected)
    assert np.array_equal(load_audio(io.BytesIO(path.read_bytes())), expected)
    r, w = os.pipe()  # not seekable: read once into memory, within the size limit
    writer = threading.Thread(target=lambda: (os.write(w, path.read_bytes()), os.close(w)))
    writer.start()
    with os.fdopen(r, "rb") as f:
        assert np.array_equal(load_audio(f), expected)
    writer.join()


def test_file_object_limits_and_modes(tmp_path):
    path = _wav(tmp_path / "clip.wav", 2.0)
    with open(path, "rb") as f, pytest.raises(AudioTooLargeError):
        open_audio(f, limits=AudioLimits(max_file_bytes=1000))
    with pytest.raises(AudioTooLargeError):
        open_audio(io.BytesIO(path.read_bytes()), limits=AudioLimits(max_file_bytes=1000))
    with open(path) as f, pytest.raises(InvalidAudioError, match="binary mode"):
        open_audio(f)
    shutil.copy(path, tmp_path / "w.wav")
    with open(tmp_path / "w.wav", "ab") as f, pytest.raises(AudioError, match="open it for reading"):
        open_audio(f)


# --- finding 9: truncated files are analysed as far as they decode, with a warning -----------------

def _cut(tmp_path, fmt, subtype=None, ext="x"):
    p = tmp_path / f"cut.{ext}"
    sf.write(p, voice(12.0), SR, format=fmt, subtype=subtype)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_16", "wav"), ("FLAC", None, "flac"), ("OGG", "OPUS", "opus"),
                                             ("MP3", None, "mp3"), ("AIFF", None, "aiff")])
def test_truncated_file_decodes_what_is_there_and_warns(tmp_path, fmt, subtype, ext):
    p = _cut(tmp_path, fmt, subtype, ext)
    with open_audio(p) as src:
        n = sum(len(b) for _, b in src.blocks())
        assert 4 * SR < n < 8 * SR and n == src.num_samples
        assert len(src.warnings) == 1 and "truncated" in src.warnings[0]


def test_complete_files_have_no_decoding_warning(tmp_path):
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", None), ("OGG", "OPUS"), ("MP3", None)):
        p = tmp_path / f"ok.{fmt.lower()}"
        sf.write(p, voice(3.0), SR, format=fmt, subtype=subtype)
        with open_audio(p) as src:
            for _ in src.blocks():
                pass
            assert src.warnings == [], (fmt, src.warnings)


@needs_ffmpeg
def test_truncated_ffmpeg_file_warns(tmp_path):
    m4a = _encode(tmp_path, "cut.m4a", 20.0, "-c:a", "aac", "-movflags", "+faststart")
    data = m4a.read_bytes()
    with open_audio(data[: len(data) // 2]) as src:
        assert 5 * SR < src.num_samples < 15 * SR
        assert len(src.warnings) == 1 and "truncated" in src.warnings[0]


def test_truncation_warning_reaches_the_report(tmp_path):
    p = _cut(tmp_path, "FLAC", None, "flac")
    analyzer = Analyzer(FakeBackend(), AnalysisOptions(segmentation=SegmentationOptions(vad="energy"), batch_size=4))
    report = analyzer.analyze(p)
    assert 4 < report.duration < 8
    assert "truncated" in report.warnings[0]
    assert not any("truncated" in w for w in analyzer.analyze(voice(3.0), sample_rate=SR).warnings)
