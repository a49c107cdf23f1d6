"""Errors carry hints (the setting that would get the caller past them) and each surface words them:
the CLI as its flags and SER_* variables, the MCP server as a call argument or its own SER_* variable,
the LangChain tool as its fields or its analyzer's options. The core's messages name no surface's words,
and exit codes live in the command lines."""

import argparse
import ast
import pickle
import re
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_server.messages import tool_message
from mcp_server.pool import ModelPool
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from ser_tool import Analyzer, AudioTooLongError, NoSpeechError, SpeechEmotionTool
from ser_tool.cli import main as ser_main
from ser_tool.console import EXIT_CODES, error_message, exit_code
from ser_tool.errors import (
    AudioDecodeError,
    BackendError,
    ConfigError,
    Hint,
    ModelNotAvailableError,
    SERError,
    python_words,
)
from ser_tool.settings import add_model_flags, flag_words
from ser_tool.testing import SR, FakeBackend, voice
from tests.helpers import REPO as ROOT
from tests.helpers import SAMPLE, error_text
# Where surface words belong: the command line, its settings and its plumbing.
SURFACE_MODULES = {"cli.py", "settings.py", "console.py"}
# The `ser batch` / `ser batch-report` commands (argument parsing and their own messages).
SURFACE_FILES = {"ser_tool/batch/cli.py", "ser_tool/batch/batch_report.py"}
# Flags of other programs that messages may quote (the Hugging Face CLI's `hf download --local-dir`).
FOREIGN_FLAGS = {"--local-dir", "--no-deps", "--head"}  # hf download; pip install; ray start


def noise(path: Path) -> Path:
    """Four seconds of faint noise: no speech for the detector (the same as tests/ser_tool/test_analyze.py's)."""
    sf.write(path, 0.0005 * np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32), SR)
    return path


def test_core_messages_name_no_flags_or_variables():
    """Every string in ser_tool outside the command line (docstrings aside) is free of --flags and SER_*."""
    pattern = re.compile(r"(?<![\w-])--[a-z][a-z-]*|SER_[A-Z]")
    found = []
    for path in sorted((ROOT / "ser_tool").rglob("*.py")):
        if path.name in SURFACE_MODULES and path.parent.name == "ser_tool":
            continue
        if str(path.relative_to(ROOT)) in SURFACE_FILES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                words = set(pattern.findall(node.value)) - FOREIGN_FLAGS
                if words:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(words)}")
    assert not found, "\n".join(found)


def test_a_hint_is_worded_by_each_surface():
    e = NoSpeechError("no speech detected; try the energy speech detector", setting="vad", value="energy")
    assert str(e) == "no speech detected; try the energy speech detector (vad='energy')"
    assert error_message(e).endswith("(--vad energy / SER_VAD=energy)")
    assert tool_message(e, "analyze_speech_emotion").endswith("(call again with vad='energy')")
    assert tool_message(e, "no_such_tool").endswith("(SER_VAD=energy in the server's configuration)")
    too_long = AudioTooLongError("x is 3:00 long; the limit is 2:00. Split it, or raise the limit", setting="max_duration")
    assert error_message(too_long).endswith("raise the limit (--max-duration / SER_MAX_DURATION, in seconds)")
    assert tool_message(too_long, "analyze_speech_emotion").endswith("(the server's SER_MAX_DURATION setting)")
    several = BackendError("out of memory", hints=(Hint("batch_size"), Hint("device", "cpu")))
    assert error_message(several).endswith("(--batch-size / SER_BATCH_SIZE; --device cpu / SER_DEVICE=cpu)")
    assert str(AudioDecodeError("corrupt")) == "corrupt"  # no hint: the message alone


def test_a_command_words_the_flags_it_declared():
    parser = argparse.ArgumentParser()
    add_model_flags(parser, model_flag="--ser-model")
    args = parser.parse_args([])
    assert flag_words(args)(Hint("model")) == "--ser-model / SER_MODEL"
    assert flag_words()(Hint("model")) == "--model / SER_MODEL"
    assert flag_words(args)(Hint("trust_remote_code", True)) == "--trust-remote-code / SER_TRUST_REMOTE_CODE=1"
    assert flag_words(args)(Hint("label_map", "joy=happy, x=")) == "--label-map 'joy=happy, x=' / SER_LABEL_MAP=joy=happy, x="
    assert flag_words(args)(Hint("folder")) is None and python_words(Hint("folder")) is None


def test_hints_survive_pickling():
    e = ModelNotAvailableError("gated", hints=(Hint("model"), Hint("offline", True)))
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ModelNotAvailableError and back.hints == e.hints and str(back) == str(e)


def test_exit_codes_live_in_the_command_lines():
    from agents.cli import EXIT_CODES as AGENT_EXIT_CODES
    from agents.errors import AgentError, ChatModelError

    assert not any(hasattr(cls, "exit_code") for cls in (SERError, ConfigError, BackendError, AgentError, ChatModelError))
    assert [exit_code(e) for e in (ConfigError("x"), ModelNotAvailableError("x"), BackendError("x"), NoSpeechError("x"))] \
        == [2, 3, 3, 1]
    assert exit_code(AgentError("x"), AGENT_EXIT_CODES) == 2 and exit_code(ChatModelError("x"), AGENT_EXIT_CODES) == 3
    assert exit_code(AgentError("x"), EXIT_CODES) == 1  # a table without the agent's errors: the default


# -- the hints through each surface, end to end ---------------------------------------------------------

def test_cli_words_hints_as_its_flags(tmp_path, capsys):
    assert ser_main(["analyze", str(noise(tmp_path / "noise.wav"))]) == 1
    err = capsys.readouterr().err
    assert "no speech detected" in err and "(--vad energy / SER_VAD=energy)" in err
    assert ser_main(["analyze", str(SAMPLE), "--max-duration", "1"]) == 1
    assert "(--max-duration / SER_MAX_DURATION, in seconds)" in capsys.readouterr().err


def test_langchain_tool_words_hints_as_its_options(tmp_path):
    tool = SpeechEmotionTool(analyzer=Analyzer(FakeBackend()))
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": {"audio_path": str(noise(tmp_path / "n.wav"))}})
    assert msg.status == "error" and "no speech detected" in msg.content
    assert msg.content.endswith("(the tool's analyzer with vad='energy')") and "--" not in msg.content


@asynccontextmanager
async def _client(folder: Path, **settings):
    settings = ServerSettings(allowed_dirs=[folder], warm_up=False, **settings)
    server = build_server(settings, pool=ModelPool({"fake": FakeBackend()}, settings.analysis_options()))
    async with create_connected_server_and_client_session(server) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_mcp_words_hints_as_call_arguments_or_its_configuration(tmp_path, anyio_backend):
    noise(tmp_path / "noise.wav")
    sf.write(tmp_path / "voice.wav", voice(6.0), SR)
    async with _client(tmp_path, max_duration=5.0) as client:
        text = error_text(await client.call_tool("analyze_speech_emotion", {"path": "noise.wav"}))
        assert "no speech detected" in text and text.endswith("(call again with vad='energy')")
        text = error_text(await client.call_tool("transcribe_speech_emotion", {"path": "noise.wav", "transcript": "hi"}))
        assert text.endswith("(call again with vad='energy')")
        text = error_text(await client.call_tool("analyze_speech_emotion", {"path": "voice.wav"}))
        assert "raise the limit" in text and text.endswith("(the server's SER_MAX_DURATION setting)") and "--" not in text
