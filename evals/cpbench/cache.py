"""An on-disk cache of chat-model calls keyed by (model id, temperature, prompt): a rerun or an interrupted
run resumes without repeating (paid) calls. One small JSON file per call, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["CallCache", "call_key"]


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
