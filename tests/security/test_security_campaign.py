"""The hostile campaign of the security issue, replayed end to end through the surfaces an attacker
reaches: the MCP tools (base64, a file in an allowed folder, a served URL) and the LangChain tool with
allowed folders. Playlists and concat scripts that point ffmpeg at a real audio file OUTSIDE the
sandbox must come back as a decode error - never as that file's affect - and the server keeps serving.

The module-level checks of each mechanism live in test_security_decoder.py (decoder),
test_security_sandbox.py (open-once, links, URLs), test_security_bounds.py (work per call) and
test_security_text.py (hostile names); this file checks that the surfaces are wired to them.
"""

import base64
import shutil
from contextlib import asynccontextmanager

import pytest
import soundfile as sf
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_server.pool import ModelPool
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from ser_tool.testing import SR, FakeBackend, voice
from tests.helpers import error_text, file_server

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed: the fallback under attack is absent"),
]

ANALYZE, TRANSCRIBE = "analyze_speech_emotion", "transcribe_speech_emotion"


@pytest.fixture
def secret(tmp_path):
    """A real, decodable audio file outside every allowed folder (what the attacker wants heard)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.flac"
    sf.write(path, voice(3.0, f0=200), SR)
    return path


def attacks(secret) -> dict[str, bytes]:
    """Scripts that make a content-sniffing ffmpeg read `secret` (each did, before the fix)."""
    return {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{secret}\n#EXT-X-ENDLIST\n".encode(),
        "hls-file-url": f"#EXTM3U\n#EXTINF:10.0,\nfile://{secret}\n#EXT-X-ENDLIST\n".encode(),
        "ffconcat": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "m3u-plain": f"{secret}\n".encode(),
    }


@pytest.fixture
def allowed(tmp_path):
    folder = tmp_path / "allowed"
    folder.mkdir()
    sf.write(folder / "ok.wav", voice(2.0), SR)
    return folder


@asynccontextmanager
async def client_for(allowed, **settings):
    fake = FakeBackend()
    server = build_server(ServerSettings(allowed_dirs=[allowed], warm_up=False, **settings),
                          pool=ModelPool({"embedded": fake}))
    async with create_connected_server_and_client_session(server) as client:
        yield client, fake


def _refused(result) -> str:
    text = error_text(result)
    assert "not an audio file" in text or "cannot decode" in text or "not audio" in text, text
    return text


@pytest.mark.parametrize("kind", ["hls", "hls-file-url", "ffconcat", "m3u-plain"])
async def test_playlists_through_every_mcp_source_are_refused_and_serving_goes_on(kind, secret, allowed):
    script = attacks(secret)[kind]
    (allowed / f"{kind}.m3u8").write_bytes(script)
    (allowed / f"{kind}.wav").write_bytes(script)  # an audio extension changes nothing: content decides
    async with client_for(allowed, allow_urls=True, url_allow_private=True) as (client, fake):
        with file_server(allowed) as base:
            calls = [
                {"audio_base64": base64.b64encode(script).decode()},
                {"path": f"{kind}.m3u8"},
                {"path": f"{kind}.wav"},
                {"url": f"{base}/{kind}.m3u8"},
            ]
            for args in calls:
                text = _refused(await client.call_tool(ANALYZE, args))
                assert str(secret) not in text, text  # nothing about the target leaks either
                assert (await client.call_tool(TRANSCRIBE, {**args, "transcript": "x"})).isError
            assert fake.batches == []  # no forward pass ever ran: nothing was decoded
            ok = await client.call_tool(ANALYZE, {"path": "ok.wav"})  # the server still serves
            assert not ok.isError, ok.content[0].text


def test_playlists_through_the_langchain_tool_are_refused(secret, allowed, fake_backend):
    pytest.importorskip("langchain_core")
    from langchain_core.tools import ToolException

    from ser_tool import Analyzer
    from ser_tool.langchain_tool import SpeechEmotionTool

    tool = SpeechEmotionTool(analyzer=Analyzer(fake_backend), allowed_dirs=[str(allowed)])
    for kind, script in attacks(secret).items():
        (allowed / f"{kind}.ogg").write_bytes(script)
        for args in ({"audio_path": f"{allowed}/{kind}.ogg"}, {"audio_base64": base64.b64encode(script).decode()}):
            with pytest.raises(ToolException, match="not an audio file|cannot decode|not audio") as e:
                tool._run(**args)
            assert str(secret) not in str(e.value)
    assert fake_backend.batches == []
    # a good file still works through the same tool
    text, report = tool._run(audio_path=str(allowed / "ok.wav"))
    assert report.duration == pytest.approx(2.0, abs=0.05)
