"""An on-disk cache of chat-model calls keyed by (model id, temperature, prompt): a rerun or an interrupted
run resumes without repeating (paid) calls. One small JSON file per call, written atomically.
`CachedChatModel` puts a chat model behind the cache, so the agent runs unchanged.

Anything but a well-formed entry (a JSON object whose `reply` is a string, for this model and temperature)
is a miss: the call is made again and the damaged entry replaced - a truncated write, a hand edit, a
folder or a dangling link where the file should be never blocks a rerun. Write failures (disk full, a
read-only or unwritable folder) raise an OutputError that says what to do."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from agents.pipeline import invoke
from evals.output import output_error
from ser_tool.files import replaced_atomically

__all__ = ["CachedChatModel", "CallCache", "call_key"]

MAX_ENTRY_BYTES = 64 * 2**20  # larger than any reply; a bigger file is damage, not an entry


def call_key(model_id: str, temperature: float | None, system: str, user: str) -> str:
    blob = json.dumps([model_id, temperature, system, user], ensure_ascii=False)
    # surrogatepass: a prompt quoting an undecodable file name still has a key
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


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
        path = self._path(key) if self.folder is not None else None
        if path is not None:
            reply = _read_entry(path, model_id, temperature)
            if reply is not None:
                self.hits += 1
                return reply
        reply = call()
        self.calls += 1
        if path is not None:
            self._write(path, {"model": model_id, "temperature": temperature, "reply": reply})
        return reply

    def saved(self) -> int:
        """Entries on disk (well-formed or not): what a rerun may answer from."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        return sum(1 for _ in self.folder.glob("??/*.json"))

    def _write(self, path: Path, entry: dict) -> None:
        for attempt in range(2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with replaced_atomically(path) as tmp, tmp.open("w", encoding="utf-8") as f:
                    json.dump(entry, f)  # ASCII: any reply (even one with lone surrogates) can be written
                return
            except (IsADirectoryError, NotADirectoryError, FileExistsError) as e:
                # Something is in the way inside the cache (a folder named like an entry, a file named like
                # a shard folder): clear it once and write again.
                if attempt or not self._clear_obstacle(path):
                    raise output_error(e, path, "the model-call cache", "--cache") from None
            except OSError as e:
                raise output_error(e, path.parent, "the model-call cache", "--cache") from None

    def _clear_obstacle(self, path: Path) -> bool:
        """Remove what blocks writing `path`: a folder in its place, or a non-folder in place of its shard
        folder. Only ever inside the cache folder; links are removed, never followed."""
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)  # another thread may be clearing it too
                return True
            shard = path.parent
            if shard.parent == self.folder and (shard.is_symlink() or shard.exists()) and not shard.is_dir():
                shard.unlink(missing_ok=True)  # a file or a dangling link where the shard folder belongs
                return True
        except OSError as e:
            raise output_error(e, path, "the model-call cache", "--cache") from None
        return False


def _read_entry(path: Path, model_id: str, temperature: float | None) -> str | None:
    """The cached reply, or None for anything that is not a well-formed entry of this call."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_ENTRY_BYTES:
            return None
        entry = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON, absurdly nested
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("reply"), str):
        return None
    if entry.get("model", model_id) != model_id or entry.get("temperature", temperature) != temperature:
        return None  # a file copied from another call's place
    return entry["reply"]


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
