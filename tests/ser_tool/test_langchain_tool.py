"""The LangChain tool: the standard langchain-tests suite, content + artifact, errors as ToolException,
one shared model, the allowed-folders rule, and use by a tool-calling agent (scripted chat model)."""

import asyncio
import base64
import sys

import numpy as np
import pytest
import soundfile as sf
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from agents.testing import ScriptedChatModel
from ser_tool import AffectReport, Analyzer, EmotionTranscript, GivenTranscript
from ser_tool.describe import report_text
from ser_tool.langchain_tool import SpeechEmotionInput, SpeechEmotionTool
from ser_tool.testing import SR, FakeBackend, silence, voice


class TestSpeechEmotionToolStandard(ToolsUnitTests):
    @property
    def tool_constructor(self):
        return SpeechEmotionTool

    @property
    def tool_constructor_params(self) -> dict:
        return {"analyzer": Analyzer(FakeBackend())}

    @property
    def tool_invoke_params_example(self) -> dict:
        return {"audio_path": "call.wav", "timeline": True}


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "call.wav"
    sf.write(path, np.concatenate([voice(3.0, amp=0.4), silence(1.0), voice(3.0, amp=0.05)]), SR)
    return path


@pytest.fixture
def fake_tool():
    return SpeechEmotionTool(analyzer=Analyzer(FakeBackend()))


def call(tool: BaseTool, **args) -> ToolMessage:
    return tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})


def test_tool_call_gives_text_to_the_llm_and_the_report_to_code(fake_tool, wav):
    msg = call(fake_tool, audio_path=str(wav), timeline=True)
    assert isinstance(msg, ToolMessage) and msg.status == "success"
    assert isinstance(msg.artifact, AffectReport)
    # the LLM reads the compact summary (the description first); the artifact is the full report
    assert msg.content == report_text(msg.artifact) and msg.content.startswith(msg.artifact.description)
    assert msg.artifact.timeline is not None
    # a plain invoke (no tool call) returns the text only
    assert fake_tool.invoke({"audio_path": str(wav)}) == report_text(msg.artifact)


def test_async_call(fake_tool, wav):
    msg = asyncio.run(fake_tool.ainvoke({"type": "tool_call", "id": "a", "name": fake_tool.name,
                                         "args": {"audio_path": str(wav)}}))
    assert isinstance(msg.artifact, AffectReport)


def test_base64_audio(fake_tool, wav):
    msg = call(fake_tool, audio_base64=base64.b64encode(wav.read_bytes()).decode())
    assert msg.artifact.source == "<bytes>"


def test_the_model_is_shared_across_calls(wav):
    backend = FakeBackend()
    tool = SpeechEmotionTool(analyzer=Analyzer(backend))
    call(tool, audio_path=str(wav))
    call(tool, audio_path=str(wav))
    assert len(backend.batches) >= 2  # one backend did both calls
    default = SpeechEmotionTool()
    assert default._analyzer() is default._analyzer()  # the embedded model: built once, loaded lazily


@pytest.mark.parametrize("args, expected", [
    ({"audio_path": "/no/such/file.wav"}, "no such file"),
    ({}, "exactly one of audio_path or audio_base64"),
    ({"audio_base64": "!!! not base64"}, "not valid base64"),
])
def test_user_errors_come_back_as_messages_the_agent_can_read(fake_tool, args, expected):
    msg = call(fake_tool, **args)
    assert msg.status == "error"
    assert expected in msg.content


def test_bad_and_silent_audio_are_tool_errors(fake_tool, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, silence(2.0), SR)
    assert call(fake_tool, audio_path=str(bad)).status == "error"
    msg = call(fake_tool, audio_path=str(quiet))
    assert msg.status == "error" and "silent" in msg.content


def test_bugs_are_not_swallowed(wav):
    class Broken(FakeBackend):
        def predict(self, waveforms):
            raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        call(SpeechEmotionTool(analyzer=Analyzer(Broken())), audio_path=str(wav))


def test_allowed_dirs_restrict_paths(wav, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    tool = SpeechEmotionTool(analyzer=Analyzer(FakeBackend()), allowed_dirs=[wav.parent])
    assert call(tool, audio_path=str(wav)).status == "success"
    link = elsewhere / "link.wav"
    link.symlink_to(wav)
    outside = SpeechEmotionTool(analyzer=Analyzer(FakeBackend()), allowed_dirs=[elsewhere / "sub"])
    msg = call(outside, audio_path=str(link))
    assert msg.status == "error" and "outside the allowed folders" in msg.content
    msg = call(tool, audio_path=f"{wav.parent}/../{wav.parent.name}/{wav.name}")
    assert msg.status == "error" and "'..'" in msg.content


def test_transcribe_option(wav):
    tool = SpeechEmotionTool(analyzer=Analyzer(FakeBackend()),
                             asr=GivenTranscript(segments=[(0, 3, "I hate this."), (4, 7, "whatever")]))
    msg = call(tool, audio_path=str(wav), transcribe=True)
    assert isinstance(msg.artifact, EmotionTranscript)
    assert "I hate this." in msg.content and "(angry, confidence" in msg.content
    no_asr = call(SpeechEmotionTool(analyzer=Analyzer(FakeBackend())), audio_path=str(wav), transcribe=True)
    assert no_asr.status == "error" and "speech recogniser" in no_asr.content


def test_transcript_is_the_words_as_on_the_mcp_surface(wav):
    """`transcript` carries the words (as in the MCP tool transcribe_speech_emotion); no recogniser needed."""
    msg = call(SpeechEmotionTool(analyzer=Analyzer(FakeBackend())), audio_path=str(wav), transcript="I hate this.")
    assert msg.status == "success" and isinstance(msg.artifact, EmotionTranscript)
    assert [s.text for s in msg.artifact.segments] == ["I hate this."]
    assert "I hate this." in msg.content
    schema = SpeechEmotionInput.model_json_schema()["properties"]
    assert {"type": "string"} in schema["transcript"]["anyOf"] and schema["transcribe"]["type"] == "boolean"


@pytest.mark.parametrize("args", [{"transcript": True}, {"transcribe": "the words"}, {"timeline": "sometimes"}])
def test_arguments_of_the_wrong_type_come_back_as_a_message(fake_tool, wav, args):
    msg = call(fake_tool, audio_path=str(wav), **args)
    assert msg.status == "error" and "invalid arguments" in msg.content and f"{next(iter(args))}: " in msg.content
    assert "Traceback" not in msg.content


def test_schema_is_what_the_llm_reads():
    schema = SpeechEmotionTool(analyzer=Analyzer(FakeBackend())).tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == set(SpeechEmotionInput.model_fields)
    assert "expressed" in SpeechEmotionTool.model_fields["description"].default


def test_with_the_default_model(sample_path):
    msg = call(SpeechEmotionTool(), audio_path=str(sample_path))
    assert msg.status == "success" and msg.artifact.backend == "voice" and msg.artifact.model_id == "ser-tool/voice"


def test_importing_ser_tool_does_not_need_langchain():
    code = ("import sys; sys.modules['langchain_core'] = None; import ser_tool; "
            "from ser_tool import Analyzer, EmotionTranscript\n"
            "try:\n    ser_tool.SpeechEmotionTool\nexcept ImportError as e:\n    print(e)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install -e ".[langchain]"' in out


# -- with agents ---------------------------------------------------------------------------------------

def test_bind_tools_and_create_agent_call_the_tool(fake_tool, wav):
    from langchain.agents import create_agent

    model = ScriptedChatModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "analyze_speech_emotion", "args": {"audio_path": str(wav)}, "id": "t1"}]),
        "They sound upset; I would apologise first.",
    ])
    agent = create_agent(model, [fake_tool], system_prompt="You can hear audio with your tool.")
    state = agent.invoke({"messages": [{"role": "user", "content": f"How does the caller in {wav} sound?"}]})
    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and isinstance(tool_messages[0].artifact, AffectReport)
    assert state["messages"][-1].content == "They sound upset; I would apologise first."
    assert [t.name for t in model.bound_tools] == ["analyze_speech_emotion"]
    # the second model call saw the tool's text (not the artifact)
    seen = model.calls[1][-1]
    assert isinstance(seen, ToolMessage) and seen.content == report_text(tool_messages[0].artifact)


def test_agent_recovers_from_a_tool_error(fake_tool):
    from langchain.agents import create_agent

    model = ScriptedChatModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "analyze_speech_emotion", "args": {"audio_path": "/missing.wav"}, "id": "t1"}]),
        "I could not open that recording; could you check the path?",
    ])
    state = create_agent(model, [fake_tool]).invoke({"messages": [{"role": "user", "content": "listen to /missing.wav"}]})
    error = model.calls[1][-1]
    assert isinstance(error, ToolMessage) and error.status == "error" and "no such file" in error.content
    assert "could not open" in state["messages"][-1].content
