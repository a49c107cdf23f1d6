"""Every Python snippet in the README's transcript, LangChain-tool and agent sections runs, offline:
provider models are replaced by a scripted chat model, hub ids by tiny local models, call.wav by the
bundled sample. A snippet that stops working fails here."""

import re

import pytest
from langchain_core.messages import AIMessage

from agents.testing import ScriptedChatModel, make_tiny_chat_lm
from ser_tool.testing import make_tiny_whisper_asr
from tests.helpers import REPO, SAMPLE


def snippets(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def run(code: str, **replace) -> dict:
    for old, new in {"call.wav": str(SAMPLE), **replace}.items():
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


@pytest.fixture
def scripted(monkeypatch):
    """Every provider:model string builds this scripted model instead (no key, no network)."""
    made: list[ScriptedChatModel] = []

    def fake_init_chat_model(spec, **kwargs):
        model = ScriptedChatModel(replies=[
            AIMessage(content="", tool_calls=[{"name": "analyze_speech_emotion", "args": {"audio_path": str(SAMPLE)}, "id": "1"}]),
            "They sound cheerful.",
        ], temperature=kwargs.get("temperature"))
        model.__dict__["spec"] = spec
        made.append(model)
        return model

    monkeypatch.setattr("langchain.chat_models.init_chat_model", fake_init_chat_model)
    monkeypatch.setattr("langchain.agents.factory.init_chat_model", fake_init_chat_model)
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):  # the key check runs before any call
        monkeypatch.setenv(variable, "test-key-not-used")
    return made


def test_transcript_snippet(tmp_path, capsys):
    (code,) = snippets("Emotion-aware transcript")
    whisper = make_tiny_whisper_asr(tmp_path / "whisper")
    ns = run(code, **{"openai/whisper-small": str(whisper)})
    assert ns["result"].segments is not None
    assert ns["result"].report.backend == "voice"  # the default model


def test_langchain_tool_snippet(scripted, capsys):
    (code,) = snippets("LangChain tool")
    assert len(code.strip().splitlines()) <= 6  # "in 5 lines" (plus a blank one)
    run(code)
    assert capsys.readouterr().out.strip() == "They sound cheerful."
    assert scripted[0].__dict__["spec"] == "anthropic:claude-sonnet-4-5"
    assert [t.name for t in scripted[0].bound_tools] == ["analyze_speech_emotion"]


def test_agent_snippet_with_a_provider_string(scripted, capsys):
    code = snippets("Reference agent")[0]
    scripted_reply = code.replace('answer = pipeline.run', 'pipeline.model.replies = ["Impatient."]\nanswer = pipeline.run')
    run(scripted_reply)
    out = capsys.readouterr().out
    assert out.startswith("Impatient.\n[system]\n")
    assert "I've been waiting for two hours." in out and "Affect of the whole recording" in out
    assert scripted[0].temperature == 0


def test_offline_local_model_snippet(tmp_path, monkeypatch, capsys):
    code = snippets("Reference agent")[1]
    tiny = make_tiny_chat_lm(tmp_path / "lm")  # stands in for the SmolLM2 GGUF file (see test_agent_local for the real one)
    monkeypatch.setattr("agents.models.smollm2_gguf", lambda: tiny)
    monkeypatch.setattr("agents.local_models.qwen_installed", lambda: False)  # "local" falls back to SmolLM2
    ns = run(code)
    assert ns["pipeline"].model.model_path == str(tiny)


def test_hear_once_ask_many_snippet(scripted, capsys):
    code = snippets("Reference agent")[2]
    run(code.replace("for mode in", 'pipeline.model.replies = ["Not sure.", "No, impatient."]\nfor mode in'))
    assert capsys.readouterr().out.splitlines() == ["none Not sure.", "predicted No, impatient."]
    sent = scripted[0].calls
    assert "Affect" not in sent[0][1].content and "Affect of the whole recording" in sent[1][1].content


def test_multiple_choice_snippet(monkeypatch, capsys):
    code = snippets("Reference agent")[3]
    model = ScriptedChatModel(replies=["B. The clipped voice."])  # stands in for the local model (test_llm_local)
    monkeypatch.setattr("agents.local_models.local_chat_model", lambda name, **kw: model)
    run(code)
    assert capsys.readouterr().out.strip() == "B {}"
    assert "A. soft and slow" in model.calls[0][0].text
