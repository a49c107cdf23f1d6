"""Words offline: the Whisper-base folder joined from its registry part packages, the default recogniser
when the [asr] extra is installed (and only then), and one real transcription when it is."""

import dataclasses
import hashlib

import pytest

import ser_tool.asr as asr_mod
from ser_tool.asr import OFFLINE_WHISPER, FasterWhisperASR, default_asr, load_asr, offline_whisper_dir
from ser_tool.errors import ModelNotAvailableError
from ser_tool.parts import join_parts
from tests.helpers import SHARED_DATA

INSTALLED = asr_mod.offline_asr_installed()  # the real answer, before conftest's autouse fixture hides it
REAL = asr_mod.offline_asr_installed


@pytest.fixture
def parts(tmp_path):
    """Two fake part files and a side file; the sha256 of the joined bytes."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin.part1").write_bytes(b"first half|")
    (src / "model.bin.part2").write_bytes(b"second half")
    (src / "config.json").write_text("{}")
    return [src / "model.bin.part1", src / "model.bin.part2"], [src / "config.json"], \
        hashlib.sha256(b"first half|second half").hexdigest()


def test_join_concatenates_in_order_beside_the_side_files(parts, tmp_path):
    bins, files, sha = parts
    out = join_parts(bins, tmp_path / "cache" / "m", sha256=sha, member="model.bin", files=files)
    assert (out / "model.bin").read_bytes() == b"first half|second half"
    assert (out / "config.json").read_text() == "{}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no temporary folder left


def test_a_stale_incomplete_folder_is_replaced(parts, tmp_path):
    bins, files, sha = parts
    stale = tmp_path / "cache" / "m"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("old")  # e.g. an older join interrupted before model.bin
    out = join_parts(bins, stale, sha256=sha, member="model.bin", files=files)
    assert (out / "model.bin").read_bytes() == b"first half|second half" and (out / "config.json").read_text() == "{}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]


def test_checksum_mismatch_leaves_nothing(parts, tmp_path):
    bins, files, _ = parts
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotAvailableError, match="sha256.*reinstall"):
        join_parts(bins[::-1], cache / "m", sha256=parts[2], member="model.bin", files=files)  # wrong order: other bytes
    assert list(cache.iterdir()) == []


def test_missing_part_is_named(parts, tmp_path):
    bins, files, sha = parts
    bins[1].unlink()
    with pytest.raises(ModelNotAvailableError, match="model.bin.part2.*reinstall"):
        join_parts(bins, tmp_path / "cache" / "m", sha256=sha, member="model.bin", files=files)
    assert not (tmp_path / "cache" / "m").exists()


# -- one joined file (the offline chat model's GGUF: agents.gguf_parts uses the same helper) --------------------

def write_parts(folder, chunks):
    paths = []
    for i, chunk in enumerate(chunks, 1):
        paths.append(folder / f"part{i:02d}.bin")
        paths[-1].write_bytes(chunk)
    return paths, hashlib.sha256(b"".join(chunks)).hexdigest()


def test_join_parts_concatenates_in_order(tmp_path):
    parts, digest = write_parts(tmp_path, [b"abc" * 1000, b"", b"xyz" * 7])
    target = join_parts(parts, tmp_path / "cache" / "m.gguf", sha256=digest)
    assert target.read_bytes() == b"abc" * 1000 + b"xyz" * 7
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf"]


def test_join_parts_with_a_bad_checksum_leaves_nothing_behind(tmp_path):
    parts, digest = write_parts(tmp_path, [b"one", b"two"])
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotAvailableError, match="sha256.*reinstall"):
        join_parts(parts[::-1], cache / "m.gguf", sha256=digest)  # wrong order: wrong checksum
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("member", [None, "model.bin"])
@pytest.mark.parametrize("failure, expected", [(OSError("No space left on device"), ModelNotAvailableError),
                                               (KeyboardInterrupt(), KeyboardInterrupt)])
def test_an_interrupted_join_leaves_no_partial_file(tmp_path, monkeypatch, failure, expected, member):
    import ser_tool.parts

    parts, digest = write_parts(tmp_path, [b"one", b"two"])
    cache = tmp_path / "cache"

    def fail(*_):
        raise failure

    monkeypatch.setattr(ser_tool.parts.os, "replace", fail)
    with pytest.raises(expected):
        join_parts(parts, cache / "m.gguf", sha256=digest, member=member)
    assert list(cache.iterdir()) == []


def test_join_parts_with_a_missing_part_is_a_clear_error(tmp_path):
    parts, digest = write_parts(tmp_path, [b"one"])
    with pytest.raises(ModelNotAvailableError, match="part files missing.*nope.bin"):
        join_parts([*parts, tmp_path / "nope.bin"], tmp_path / "m.gguf", sha256=digest)


def test_joined_folder_is_reused_and_a_partial_one_rejoined(parts, tmp_path, monkeypatch):
    bins, files, sha = parts
    src = bins[0].parent
    spec = dataclasses.replace(OFFLINE_WHISPER, parts=(("pkg_a", "model.bin.part1"), ("pkg_b", "model.bin.part2")),
                               files=("config.json",), sha256=sha, size=len(b"first half|second half"))
    monkeypatch.setattr(asr_mod, "_package_dir", lambda module: src)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    target = offline_whisper_dir(spec, tmp_path / "cache")
    assert (target / "model.bin").stat().st_size == spec.size
    stamp = (target / "model.bin").stat().st_mtime_ns
    bins[0].unlink()  # the packages are not read again once the folder is complete
    assert offline_whisper_dir(spec, tmp_path / "cache") == target and (target / "model.bin").stat().st_mtime_ns == stamp
    (target / "model.bin").write_bytes(b"cut")  # an old, partial file (e.g. written without this code's checks)
    with pytest.raises(ModelNotAvailableError, match="model.bin.part1"):
        offline_whisper_dir(spec, tmp_path / "cache")


def test_without_the_extra_the_words_stay_unknown():
    assert default_asr() is None
    with pytest.raises(ModelNotAvailableError, match=r"pip install -e '\.\[asr\]'"):
        load_asr("offline")


def test_with_the_extra_it_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setattr(asr_mod, "offline_asr_installed", lambda *a, **k: True)
    asr = default_asr(language="de")
    assert isinstance(asr, FasterWhisperASR) and asr.language == "de" and asr.model_id == "whisper-base (offline)"
    assert load_asr("offline").model_id == asr.model_id
    assert not (tmp_path / "whisper-base-ct2").exists()  # nothing is joined or loaded until it transcribes


def test_cli_without_the_extra_names_the_pip_command(tmp_path, capsys, no_ser_env):
    import numpy as np
    import soundfile as sf

    from ser_tool.cli import main

    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["transcribe", str(wav)]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[asr]'" in err and "--asr-model" in err


@pytest.mark.anyio
async def test_mcp_server_takes_the_default(monkeypatch, audio_dir):
    from mcp.shared.memory import create_connected_server_and_client_session

    from mcp_server.server import build_server
    from mcp_server.settings import ServerSettings

    monkeypatch.setattr(asr_mod, "offline_asr_installed", lambda *a, **k: True)
    srv = build_server(ServerSettings(allowed_dirs=[audio_dir], warm_up=False))  # nothing loads yet
    async with create_connected_server_and_client_session(srv) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "whisper-base (offline)" in tools["transcribe_speech_emotion"].description


def test_agent_takes_the_default_unless_named_or_given(monkeypatch, no_ser_env):
    from agents import cli as agent_cli

    monkeypatch.setattr(asr_mod, "offline_asr_installed", lambda *a, **k: True)
    parse = agent_cli.build_parser().parse_args
    pipeline = agent_cli._pipeline(parse(["ask", "q", "--audio", "x.wav", "--mode", "none"]), model=object())
    assert pipeline.asr.model_id == "whisper-base (offline)"
    given = agent_cli._pipeline(parse(["ask", "q", "--audio", "x.wav", "--mode", "none", "--transcript", "hi"]), model=object())
    assert given.asr is None
    named = agent_cli._pipeline(parse(["ask", "q", "--audio", "x.wav", "--mode", "none", "--asr-model", "some/hub-id"]),
                                model=object())
    assert named.asr.model_id == "some/hub-id"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not INSTALLED, reason="the [asr] extra is not installed: pip install -e '.[asr]'")
@pytest.mark.skipif(not (SHARED_DATA / "ravdess").is_dir(), reason="../shared/data/ravdess is absent")
def test_real_transcription_of_a_ravdess_clip(monkeypatch, tmp_path):
    monkeypatch.setattr(asr_mod, "offline_asr_installed", REAL)
    from ser_tool.audio import load_audio

    asr = asr_mod.offline_asr(cache_dir=tmp_path)  # joined from the installed packages, checksum checked
    wave = load_audio(SHARED_DATA / "ravdess" / "audio" / "03-01-01-01-01-01-01.opus")
    transcript = asr.transcribe(wave)
    assert "door" in transcript.text.lower() and transcript.language == "en"
