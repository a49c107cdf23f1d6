"""An on-disk cache of chat-model calls keyed by (model id, temperature, prompt): a rerun or an interrupted
run resumes without repeating (paid) calls. One small JSON file per call, written atomically.
`CachedChatModel` puts a chat model behind the cache, so the agent runs unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from agents.pipeline import invoke

__all__ = ["CachedChatModel", "CallCache", "call_key"]


def call_key(model_id: str, temperature: float | None, system: str, user: str) -> str:
    blob = json.dumps([model_id, temperature, system, user], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """`get_or_call(model_id, temperature, system, user, call)`; folder None = no cache. Counts hits and calls."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.hits = 0
        self.calls = 0

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get_or_call(self, model_id: str, temperature: float | None, system: str, user: str, call: Callable[[], str]) -> str:
        key = call_key(model_id, temperature, system, user)
        if self.folder is not None:
            path = self._path(key)
            if path.is_file():
                try:
                    text = json.loads(path.read_text(encoding="utf-8"))["reply"]
                    self.hits += 1
                    return text
                except (ValueError, KeyError):
                    pass  # a damaged entry: call again
        reply = call()
        self.calls += 1
        if self.folder is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"model": model_id, "temperature": temperature, "reply": reply}, f, ensure_ascii=False)
            os.replace(tmp, path)
        return reply


class CachedChatModel(BaseChatModel):
    """A chat model whose replies go through a `CallCache`: the evals wrap the agent's model in it, so the
    agent runs unchanged and a rerun makes no call that was made before.

    model: the chat model that answers a miss (built with its temperature already applied); model_id and
    model_temperature name it in the cache key, with the system text and the rest of the conversation.
    Text only: tool calls of the wrapped model are not kept.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = Field(description="The wrapped chat model (a LangChain chat model or Runnable).")
    model_id: str = Field(description="The model's stable id in the cache key (e.g. its spec string).")
    model_temperature: float | None = Field(default=None, description="The wrapped model's temperature (a key part).")
    store: CallCache = Field(description="Where replies are kept (CallCache(None): nowhere, calls are only counted).")

    @property
    def _llm_type(self) -> str:
        return "cached"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "temperature": self.model_temperature}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        system = "\n\n".join(m.text for m in messages if m.type == "system")
        rest = [m for m in messages if m.type != "system"]
        # a single question keys as (system, its text), as the evals always have; longer chats by every turn
        user = rest[0].text if len(rest) == 1 and rest[0].type == "human" else json.dumps([[m.type, m.text] for m in rest])
        model = self.model
        if stop or kwargs:
            user += "\n" + json.dumps({"stop": stop, **kwargs}, sort_keys=True, default=str)
            model = model.bind(stop=stop, **kwargs)
        reply = self.store.get_or_call(self.model_id, self.model_temperature, system, user, lambda: invoke(model, messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])
