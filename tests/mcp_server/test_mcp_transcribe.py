"""The MCP server's second tool, transcribe_speech_emotion, in-process (memory-stream client session):
a given transcript, a tiny local Whisper through the real pipeline path, and errors as error results."""

import base64
import json

import jsonschema
import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_server.pool import ModelPool
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from ser_tool import EmotionTranscript, WhisperASR
from ser_tool.testing import FakeBackend
from tests.helpers import error_text

pytestmark = pytest.mark.anyio
TRANSCRIBE = "transcribe_speech_emotion"


def server(audio_dir, **kwargs):
    settings = ServerSettings(allowed_dirs=[audio_dir], warm_up=False)
    pool = ModelPool({"fake": FakeBackend()}, settings.analysis_options())
    return build_server(settings, pool=pool, **kwargs)


async def call(srv, **args):
    async with create_connected_server_and_client_session(srv) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        return await client.call_tool(TRANSCRIBE, args), tools[TRANSCRIBE]


def check(result, tool, detail: str = "summary") -> EmotionTranscript:
    assert not result.isError, result.content[0].text
    jsonschema.validate(result.structuredContent, tool.outputSchema)
    transcript = EmotionTranscript.model_validate(result.structuredContent)
    assert result.content[0].text.startswith(transcript.report.description)
    # the full JSON as text only when asked for (detail='full'); the structured content always has it
    assert len(result.content) == (2 if detail == "full" else 1)
    if detail == "full":
        assert json.loads(result.content[1].text) == result.structuredContent
    return transcript


async def test_published_schema_and_description(audio_dir):
    _, tool = await call(server(audio_dir), path="short.wav", transcript="hi")
    assert tool.outputSchema["title"] == "EmotionTranscript"
    assert set(tool.inputSchema["properties"]) == {"path", "url", "audio_base64", "transcript", "vad",
                                                  "speakers", "detail", "max_segments"}
    assert "no speech recogniser configured" in tool.description and "expressed" in tool.description.lower()


async def test_given_transcript(audio_dir):
    result, tool = await call(server(audio_dir), path="short.wav", transcript="I am so happy to hear that.")
    t = check(result, tool)
    assert t.asr_model == "given" and [s.text for s in t.segments] == ["I am so happy to hear that."]
    assert t.segments[0].affect is not None
    assert "I am so happy to hear that." in result.content[0].text
    full, tool = await call(server(audio_dir), path="short.wav", transcript="Fine.", detail="full")
    check(full, tool, detail="full")


async def test_tiny_whisper(audio_dir, tiny_whisper):
    asr = WhisperASR(str(tiny_whisper), language="en")
    result, tool = await call(server(audio_dir, asr=asr), path="short.wav")
    t = check(result, tool)
    assert t.asr_model == str(tiny_whisper)
    assert all(0 <= s.start <= s.end <= t.duration for s in t.segments)
    assert str(tiny_whisper) in tool.description


async def test_asr_model_from_settings_is_lazy(audio_dir, tmp_path):
    settings = ServerSettings(allowed_dirs=[audio_dir], warm_up=False, asr_model=str(tmp_path / "missing"))
    srv = build_server(settings, pool=ModelPool({"fake": FakeBackend()}, settings.analysis_options()))  # nothing loads yet
    async with create_connected_server_and_client_session(srv) as client:
        result = await client.call_tool(TRANSCRIBE, {"path": "short.wav"})
        assert "missing' does not exist" in error_text(result) and "SER_ASR_MODEL" in error_text(result)
        config = json.loads((await client.read_resource("ser://config")).contents[0].text)
        assert config["speech_recogniser"] == str(tmp_path / "missing")


@pytest.mark.parametrize("args, expected", [
    ({"path": "short.wav"}, "no speech recogniser configured"),
    ({"path": "../short.wav", "transcript": "x"}, ".."),
    ({"path": "corrupt.wav", "transcript": "x"}, "corrupt.wav"),
    ({"path": "silent.wav", "transcript": "x"}, "silent"),
    ({"transcript": "x"}, "exactly one"),
])
async def test_errors_are_error_results(audio_dir, args, expected):
    result, _ = await call(server(audio_dir), **args)
    assert expected in error_text(result)


async def test_base64_audio(audio_dir):
    data = base64.b64encode((audio_dir / "short.wav").read_bytes()).decode()
    result, tool = await call(server(audio_dir), audio_base64=data, transcript="hello")
    assert check(result, tool).source == "<bytes>"
