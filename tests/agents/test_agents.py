"""The reference agent: prompt rendering (golden text per affect mode), the fixed pipeline with a scripted
chat model that records what it was sent, follow-up turns, the tool-calling agent, chat models from
strings, errors, and the `ser-agent` CLI with piped turns. No network, no API key."""

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agents import (
    DEFAULT_TEMPLATE,
    AffectPipeline,
    AgentError,
    ChatModelError,
    Conversation,
    OracleAffect,
    OracleSegment,
    ask_tool_agent,
    build_tool_agent,
    chat_model,
    render_prompt,
)
from agents.cli import main
from agents.testing import ScriptedChatModel
from ser_tool import AffectReport, Analyzer, AudioDecodeError, EmotionTranscript, InvalidAudioError, WhisperASR
from ser_tool.testing import SR, CountingASR, FakeBackend, make_tiny_whisper_asr, silence, voice
from tests.helpers import NEUTRAL_UNSURE, QUESTION, REPORT, SAD, TRANSCRIPT

GOLDEN = Path(__file__).parent / "golden"
ORACLE = OracleAffect(emotion="frustrated", valence=0.25, arousal=0.55,
                      segments=[OracleSegment(start=0, end=5, emotion="sad"), OracleSegment(start=5, end=9, emotion="angry")])


# -- prompt rendering ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["none", "predicted", "oracle"])
def test_prompt_golden_text(mode):
    prompt = render_prompt(QUESTION, mode=mode, transcript=TRANSCRIPT, oracle=ORACLE if mode == "oracle" else None)
    assert prompt.as_text() + "\n" == (GOLDEN / f"prompt_{mode}.txt").read_text()


def test_modes_differ_only_in_the_affect():
    none, predicted = (render_prompt(QUESTION, mode=m, transcript=TRANSCRIPT) for m in ("none", "predicted"))
    for line in ("I waited all day for the delivery.", "Question: " + QUESTION):
        assert line in none.user and line in predicted.user
    assert "sad" not in none.user and "conf" not in none.user and "valence" not in none.system
    assert "(sad, conf 0.58" in predicted.user and "uncertain, maybe neutral" in predicted.user


@pytest.mark.parametrize("mode", ["none", "predicted", "oracle"])
def test_prompt_golden_text_without_words(mode):
    """No transcript and no speech recogniser: every mode answers from what it has and says the words are unknown."""
    prompt = render_prompt(QUESTION, mode=mode, transcript=None, report=REPORT if mode == "predicted" else None,
                           oracle=ORACLE if mode == "oracle" else None)
    assert prompt.as_text() + "\n" == (GOLDEN / f"prompt_{mode}_no_words.txt").read_text()
    assert "words were not transcribed" in prompt.system and "no transcript: the words are unknown" in prompt.user
    assert "Besides the words" not in prompt.system and "you get its transcript" not in prompt.system


def test_timeline_is_shown_when_the_words_do_not_show_it():
    with_words = render_prompt(QUESTION, mode="predicted", transcript=TRANSCRIPT)  # 2 timed segments, 2 stretches
    assert "Affect over time" not in with_words.user
    plain = render_prompt(QUESTION, mode="predicted", transcript="I waited. It's fine.", report=REPORT)
    assert "Affect over time (speech-emotion model):\n[0.0-5.0s] sad, conf 0.58\n[6.0-9.0s] uncertain, maybe neutral" in plain.user
    oracle = render_prompt(QUESTION, mode="oracle", transcript="I waited. It's fine.", oracle=ORACLE)
    assert "Affect over time (human annotation):\n[0.0-5.0s] sad\n[5.0-9.0s] angry" in oracle.user
    assert "Affect over time" not in render_prompt(QUESTION, mode="oracle", transcript=TRANSCRIPT, oracle=ORACLE).user


def test_adjacent_windows_with_one_emotion_merge_into_one_stretch():
    from agents import affect_stretches
    from ser_tool.report import Segment

    timeline = [Segment(start=0, end=10, speech=True, affect=SAD), Segment(start=10, end=20, speech=True, affect=SAD),
                Segment(start=20, end=21, speech=False), Segment(start=21, end=25, speech=True, affect=SAD),
                Segment(start=25, end=30, speech=True, affect=NEUTRAL_UNSURE)]
    stretches = affect_stretches(REPORT.model_copy(update={"timeline": timeline, "duration": 30.0}))
    assert [(s.start, s.end, s.affect.emotion) for s in stretches] == [(0, 20, "sad"), (21, 25, "sad"), (25, 30, "neutral")]


def test_prompt_without_words_and_with_plain_text():
    no_words = render_prompt("How do I sound?", mode="predicted", transcript=None, report=REPORT)
    assert "no transcript: the words are unknown" in no_words.user
    assert "expressed emotion: sad, confidence 0.44" in no_words.user
    plain = render_prompt("Q?", mode="none", transcript="just words")
    assert "Transcript:\njust words" in plain.user


def test_template_is_overridable():
    template = dataclasses.replace(DEFAULT_TEMPLATE, system="Be kind.\n{affect_help}",
                                   user="{affect_block}\n---\n{context}Q: {question}")
    prompt = render_prompt(QUESTION, mode="predicted", transcript=TRANSCRIPT, context="support call", template=template)
    assert prompt.system.startswith("Be kind.\nBesides the words")
    assert prompt.user.endswith("---\nContext: support call\n\nQ: " + QUESTION)


def test_prompt_needs_what_the_mode_needs():
    with pytest.raises(ValueError, match="needs an affect report"):
        render_prompt("q", mode="predicted", transcript="words")
    with pytest.raises(ValueError, match="OracleAffect"):
        render_prompt("q", mode="oracle", transcript="words")
    with pytest.raises(ValueError, match="affect mode"):
        render_prompt("q", mode="loud", transcript="words")


# -- the fixed pipeline ----------------------------------------------------------------------------------

@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "voice.wav"
    sf.write(path, np.concatenate([voice(3.0, amp=0.4), silence(2.0), voice(3.0, amp=0.05)]), SR)
    return path


SEGMENTS = [(0.0, 3.0, "This is unacceptable!"), (5.0, 8.0, "anyway, never mind.")]


def test_pipeline_sends_the_rendered_prompt(wav):
    model = ScriptedChatModel(replies=["They sound angry, then resigned."])
    pipeline = AffectPipeline(model, analyzer=Analyzer(FakeBackend()), mode="predicted", temperature=0.3)
    answer = pipeline.run(QUESTION, audio=wav, transcript=SEGMENTS, context="a support call")
    assert answer.answer == "They sound angry, then resigned."
    (sent,) = model.calls
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage]
    assert sent[0].content == answer.prompt.system and sent[1].content == answer.prompt.user
    user = sent[1].content
    assert user.startswith("Context: a support call\n\nAffect of the whole recording (speech-emotion model):")
    assert "(angry, conf" in user and "This is unacceptable!" in user  # FakeBackend: loud = angry
    assert "(sad, conf" in user and "anyway, never mind." in user      # quiet = sad
    assert user.endswith("Question: " + QUESTION)
    assert isinstance(answer.perception.transcript, EmotionTranscript)
    assert pipeline.model.temperature == 0.3  # the temperature reached the model


def test_pipeline_none_mode_needs_no_audio():
    model = ScriptedChatModel(replies=["ok"])
    answer = AffectPipeline(model, mode="none").run("What was said?", transcript="hello there")
    assert answer.perception.report is None
    assert "hello there" in model.calls[0][1].content and "Affect" not in model.calls[0][1].content


def test_pipeline_oracle_mode(wav):
    model = ScriptedChatModel(replies=["ok"])
    pipeline = AffectPipeline(model, mode="oracle")
    with pytest.raises(AgentError, match="oracle"):
        pipeline.run("q", transcript=SEGMENTS)
    pipeline.run("q", transcript=SEGMENTS, oracle={"emotion": "angry", "segments": [{"start": 0, "end": 3, "emotion": "angry"}]})
    user = model.calls[0][1].content
    assert "(human annotation):\n- emotion: angry" in user and "(angry) This is unacceptable!" in user
    assert "(no label) anyway, never mind." in user


def test_pipeline_runs_asr_when_no_transcript_is_given(wav, tmp_path):
    asr = WhisperASR(str(make_tiny_whisper_asr(tmp_path / "whisper")), language="en")
    model = ScriptedChatModel(replies=["ok"])
    answer = AffectPipeline(model, analyzer=Analyzer(FakeBackend()), asr=asr).run("q", audio=wav)
    assert answer.perception.transcript.asr_model == asr.model_id
    assert "Transcript with the affect of each segment:" in model.calls[0][1].content


def test_pipeline_without_words_still_renders_the_affect(wav):
    model = ScriptedChatModel(replies=["ok"])
    answer = AffectPipeline(model, analyzer=Analyzer(FakeBackend())).run("How do I sound?", audio=wav)
    assert answer.perception.transcript is None and isinstance(answer.perception.report, AffectReport)
    assert "the words are unknown" in model.calls[0][1].content


@pytest.mark.parametrize("mode", ["none", "predicted", "oracle"])
def test_no_transcript_and_no_asr_is_not_an_error(wav, mode):
    model = ScriptedChatModel(replies=["B"])
    pipeline = AffectPipeline(model, analyzer=Analyzer(FakeBackend()), mode=mode)
    answer = pipeline.run("How does the speaker feel?", audio=wav, oracle={"emotion": "angry"} if mode == "oracle" else None)
    assert answer.answer == "B" and answer.perception.words is None
    system, user = (m.content for m in model.calls[0])
    assert "words were not transcribed" in system and "(no transcript: the words are unknown)" in user
    assert ("expressed emotion:" in user) == (mode == "predicted") and ("- emotion: angry" in user) == (mode == "oracle")
    if mode != "predicted":  # no audio needed either: nothing to hear
        again = AffectPipeline(ScriptedChatModel(replies=["C"]), mode=mode).run(
            "q", oracle={"emotion": "angry"} if mode == "oracle" else None)
        assert again.answer == "C" and again.perception.report is None


def test_errors_are_clear(wav, tmp_path):
    pipeline = AffectPipeline(ScriptedChatModel(replies=["x"]), analyzer=Analyzer(FakeBackend()))
    with pytest.raises(AgentError, match="needs the audio"):
        pipeline.run("q", transcript="words")
    with pytest.raises(AgentError, match="no question"):
        pipeline.run("  ", audio=wav)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioDecodeError):
        pipeline.run("q", audio=bad)
    failing = AffectPipeline(ScriptedChatModel(fail_with="rate limited"), analyzer=Analyzer(FakeBackend()))
    with pytest.raises(ChatModelError, match="the chat model failed .*rate limited"):
        failing.run("q", audio=wav)
    with pytest.raises(AgentError, match="affect mode"):
        AffectPipeline(ScriptedChatModel(), mode="loud")


def test_perceive_takes_an_array_with_its_sample_rate(tmp_path):
    rate = 22_050
    signal = np.concatenate([voice(2.0, sr=rate, amp=0.4), silence(1.0, sr=rate), voice(2.0, sr=rate, amp=0.05)])
    path = tmp_path / "v22k.wav"
    sf.write(path, signal, rate, subtype="FLOAT")
    pipeline = AffectPipeline(ScriptedChatModel(), analyzer=Analyzer(FakeBackend()), asr=CountingASR())
    from_array = pipeline.perceive(signal, sample_rate=rate)
    from_file = pipeline.perceive(path)
    assert pipeline.asr.heard == [5 * 16000, 5 * 16000]  # both resampled to 16 kHz before the ASR
    a, b = from_array.report, from_file.report
    assert a.duration == pytest.approx(b.duration) and len(a.timeline) == len(b.timeline)
    assert np.allclose(a.overall.probabilities.as_tuple(), b.overall.probabilities.as_tuple(), atol=1e-3)
    for sa, sb in zip(a.timeline, b.timeline, strict=True):
        assert (sa.start, sa.end, sa.speech) == pytest.approx((sb.start, sb.end, sb.speech), abs=0.02)
    assert [s.text for s in from_array.aligned.segments] == [s.text for s in from_file.aligned.segments]
    assert from_array.aligned.asr_model == "counting-asr"
    with pytest.raises(InvalidAudioError, match="sample rate"):
        pipeline.perceive(signal)


def test_perceive_once_and_answer_in_every_mode(wav):
    """One ASR pass and one SER pass serve all three modes, with the very prompts `run` sends in each."""
    asr, backend = CountingASR(), FakeBackend()
    pipeline = AffectPipeline(ScriptedChatModel(rule=lambda text: "ok"), analyzer=Analyzer(backend), asr=asr)
    perception = pipeline.perceive(wav, modes=["none", "predicted", "oracle"])
    assert len(asr.heard) == 1 and len(backend.batches) == 1
    oracle = {"emotion": "angry"}
    for mode in ("none", "predicted", "oracle"):
        shared = pipeline.answer(QUESTION, perception, mode=mode, oracle=oracle)
        alone = AffectPipeline(ScriptedChatModel(rule=lambda text: "ok"), analyzer=Analyzer(FakeBackend()),
                               asr=CountingASR(), mode=mode).run(QUESTION, audio=wav, oracle=oracle)
        assert shared.prompt == alone.prompt and shared.mode == mode
    assert len(asr.heard) == 1 and len(backend.batches) == 1
    words_only = pipeline.perceive(None, "hello", modes=["none"])
    with pytest.raises(AgentError, match="perceive the audio with mode 'predicted'"):
        pipeline.answer("q", words_only, mode="predicted")


def test_conversation_keeps_the_affect_and_the_history(wav):
    model = ScriptedChatModel(replies=["You sound upset.", "Sure, let's fix it."])
    chat = Conversation(AffectPipeline(model, analyzer=Analyzer(FakeBackend())), audio=wav, transcript=SEGMENTS)
    assert chat.say("How do I sound?") == "You sound upset."
    assert chat.say("Can you help?") == "Sure, let's fix it."
    second = model.calls[1]
    assert [m.type for m in second] == ["system", "human", "ai", "human"]
    assert "Affect of the whole recording" in second[1].content and second[3].content == "Can you help?"


# -- degenerate replies: empty, repeated, the user's message echoed -------------------------------------------

def test_degenerate_replies_are_named_and_fair_answers_are_not():
    from agents.replies import degenerate_reply

    turn = "The parcel is late again and nobody calls me back."
    assert degenerate_reply("  ", turn) == "empty" and degenerate_reply("...", turn) == "empty"
    assert degenerate_reply("You can't.", turn, previous="You can't.") == "repeat"
    assert degenerate_reply("you can't", turn, previous="You can't.") == "repeat"  # case and punctuation aside
    assert degenerate_reply(turn, turn) == "echo"
    assert degenerate_reply(f"User: {turn.upper()}", turn) == "echo"  # with a role label, in another case
    prompt = f"[voice] The speaker sounds tense and tired.\nWords: {turn}\nReply warmly."
    assert degenerate_reply("The speaker sounds tense and tired.", prompt, turn=turn) == "echo"  # a copied stretch
    assert degenerate_reply(turn, prompt, turn=turn) == "echo"
    # answers, however short or close to the message
    assert degenerate_reply("Hi!", "hi") is None  # a greeting back is no echo
    assert degenerate_reply("That sounds exhausting. Shall we call them together?", prompt, turn=turn) is None
    assert degenerate_reply("Sorry, the parcel is late again?", turn) is None
    assert degenerate_reply("follow-up: And now?", "And now?") is None
    assert degenerate_reply("Okay.", "fine", previous="Sure.") is None


def _chat(model) -> Conversation:
    return Conversation(AffectPipeline(model, analyzer=None, mode="none"), transcript="I'm so annoyed")


def test_an_echo_is_asked_again_once_and_a_good_second_reply_is_kept():
    model = ScriptedChatModel(replies=["The parcel is late again!", "That sounds maddening. What happened?"])
    chat = _chat(model)
    reply = chat.turn("The parcel is late again!")
    assert reply.text == "That sounds maddening. What happened?" and reply.warning is None
    assert model.n_calls == 2
    retry = model.calls[1][-1].content
    assert retry.startswith(model.calls[0][-1].content) and "do not repeat or quote it" in retry  # a stricter ask
    assert [m.type for m in chat.messages] == ["system", "human", "ai"]
    assert "do not repeat" not in chat.messages[1].content  # the history keeps the user's own words


@pytest.mark.parametrize("replies, fault", [
    (["", " "], "empty reply"),
    (["You can't.", "You can't.", "You can't."], "repeated its previous reply"),
])
def test_a_reply_still_degenerate_when_asked_again_carries_a_warning(replies, fault):
    model = ScriptedChatModel(replies=["Hello, I hear you.", *replies] if "repeat" in fault else list(replies))
    chat = _chat(model)
    if "repeat" in fault:
        assert chat.turn("How do I sound?").warning is None and chat.turn("Why?").warning is None  # "You can't." once is fine
    reply = chat.turn("And now what?")
    assert reply.warning is not None and fault in reply.warning and "\n" not in reply.warning
    assert model.replies == []  # asked once more, not again and again


def test_an_echoing_model_gets_a_warning_in_the_terminal_chat(wav, capsys):
    """The offline Qwen coder model sometimes says the user's turn back: the chat shows the reply and one line
    on stderr that says so, instead of leaving the nonsense unexplained."""
    model = ScriptedChatModel(rule=lambda text: text)  # says back whatever it was sent, the nudge included
    code, out = run_cli(["chat", "--audio", str(wav), "--transcript", "I'm so annoyed"], model,
                        "How do I sound?\nThe parcel is late again, and nobody calls back.\n")
    err = capsys.readouterr().err
    assert code == 0 and model.n_calls == 4  # each turn asked twice
    warnings = [line for line in err.splitlines() if line.startswith("ser-agent: warning: ")]
    assert len(warnings) == 2 and all("echoed your message" in w and "--model" in w for w in warnings)
    good = ScriptedChatModel(replies=["You sound frustrated.", "That is annoying; let's chase it."])
    run_cli(["chat", "--audio", str(wav), "--transcript", "I'm so annoyed"], good, "How do I sound?\nIt's late.\n")
    assert "warning" not in capsys.readouterr().err and good.n_calls == 2


# -- chat models -----------------------------------------------------------------------------------------

def test_chat_model_from_strings_and_objects():
    model = ScriptedChatModel()
    assert chat_model(model) is model
    assert chat_model(model, temperature=0.7).temperature == 0.7
    with pytest.raises(AgentError, match="integration package"):
        chat_model("anthropic:claude-sonnet-4-5")  # langchain-anthropic is not installed here
    with pytest.raises(AgentError):
        chat_model("nonsense-provider:some-model")
    with pytest.raises(AgentError, match="no chat model"):
        chat_model(" ")


def test_init_chat_model_gets_the_temperature(monkeypatch):
    seen = {}

    def fake_init(spec, **kwargs):
        seen.update(spec=spec, **kwargs)
        return ScriptedChatModel()

    monkeypatch.setattr("langchain.chat_models.init_chat_model", fake_init)
    chat_model("ollama:llama3.2", temperature=0.2)
    assert seen == {"spec": "ollama:llama3.2", "temperature": 0.2}


# -- tool-calling agent ----------------------------------------------------------------------------------

def test_tool_calling_agent_calls_the_ser_tool(wav):
    model = ScriptedChatModel(replies=[
        AIMessage(content="", tool_calls=[{"name": "analyze_speech_emotion", "args": {"audio_path": str(wav)}, "id": "c1"}]),
        "The caller sounds angry at first.",
    ])
    agent = build_tool_agent(model, analyzer=Analyzer(FakeBackend()))
    result = ask_tool_agent(agent, "How does the caller sound?", audio_path=str(wav))
    assert result.answer == "The caller sounds angry at first."
    assert len(result.results) == 1 and isinstance(result.results[0], AffectReport)
    assert str(wav) in model.calls[0][-1].content  # the question names the recording
    assert "analyze_speech_emotion" in model.calls[0][0].content  # system prompt explains the tool


def test_tool_calling_agent_may_answer_without_the_tool():
    agent = build_tool_agent(ScriptedChatModel(replies=["Paris."]), analyzer=Analyzer(FakeBackend()))
    result = ask_tool_agent(agent, "Capital of France?")
    assert result.answer == "Paris." and result.results == []


def test_tool_agent_model_failure():
    agent = build_tool_agent(ScriptedChatModel(fail_with="boom"), analyzer=Analyzer(FakeBackend()))
    with pytest.raises(ChatModelError, match="boom"):
        ask_tool_agent(agent, "q")


# -- ser-agent -------------------------------------------------------------------------------------------

def run_cli(argv, model=None, turns=""):
    out = io.StringIO()
    return main(argv, model=model, stdin=io.StringIO(turns), stdout=out), out.getvalue()


def test_cli_chat_with_piped_turns(wav):
    model = ScriptedChatModel(replies=["You sound frustrated; what happened?", "I can help with that."])
    code, out = run_cli(["chat", "--audio", str(wav), "--transcript", "I'm so annoyed", "--temperature", "0"],
                        model, "How do I sound?\n\nThe parcel is late.\n")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("[perceived voice] ") and "words: I'm so annoyed" in lines[1]
    assert lines[2].startswith("agent [") and lines[2].endswith("]> You sound frustrated; what happened?")
    assert "| V " in lines[2]  # the perceived affect next to the reply
    assert lines[3].endswith("]> I can help with that.")
    assert len(model.calls) == 2 and len(model.calls[1]) == 4


def test_cli_ask(wav):
    code, out = run_cli(["ask", "--audio", str(wav), "--transcript", "hi", "How do they sound?"], ScriptedChatModel(replies=["Tense."]))
    assert (code, out.strip()) == (0, "Tense.")


def test_cli_errors(wav, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SER_AGENT_MODEL", raising=False)
    assert run_cli(["chat", "--audio", str(wav)])[0] == 2
    assert "--model local" in capsys.readouterr().err
    assert run_cli(["chat", "--audio", str(tmp_path / "missing.wav")], ScriptedChatModel())[0] == 1
    assert "no such file" in capsys.readouterr().err
    assert run_cli(["chat"], ScriptedChatModel())[0] == 2
    err = capsys.readouterr().err
    assert "needs the audio" in err and "--audio FILE" in err and "audio=" not in err  # the flag, not the argument
    assert run_cli(["ask", "--mode", "none", "q"], ScriptedChatModel())[0] == 2
    assert "--transcript TEXT" in capsys.readouterr().err
    assert run_cli(["ask", "--audio", str(wav), "q"], ScriptedChatModel(fail_with="401 unauthorized"))[0] == 3
    assert "401 unauthorized" in capsys.readouterr().err


def test_a_missing_api_key_is_named_before_the_first_call(monkeypatch, capsys):
    from agents.models import missing_api_key

    built = []
    monkeypatch.setattr("langchain.chat_models.init_chat_model", lambda spec, **kw: built.append(spec) or ScriptedChatModel())
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("SER_AGENT_MODEL", raising=False)
    with pytest.raises(ChatModelError, match="ANTHROPIC_API_KEY is not set"):
        chat_model("anthropic:claude-sonnet-4-5")
    assert run_cli(["ask", "--mode", "none", "--transcript", "hi", "--model", "anthropic:claude-sonnet-4-5", "q"])[0] == 3
    err = capsys.readouterr().err
    assert "export ANTHROPIC_API_KEY=" in err and "Connection error" not in err
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert "OPENAI_API_KEY is not set" in missing_api_key("openai:gpt-4o-mini")
    assert "OPENAI_API_KEY" in missing_api_key("gpt-4o-mini")  # the provider init_chat_model infers
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert chat_model("anthropic:claude-sonnet-4-5") is not None
    assert missing_api_key("ollama:llama3.2") is None and missing_api_key("openai:gpt-4o", {"api_key": "k"}) is None
