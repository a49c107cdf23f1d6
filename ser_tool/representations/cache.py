"""Disk cache of representation features, keyed by the file's content and the representation id.

Layout: ROOT/<representation id>/<2 hex>/<sha1>.npz with `frames` (float16) and `utterance`
(float32). The key is a digest of the file's bytes, not its path or modification time, so a corpus
that is copied, moved or restored from a backup keeps its features (a fresh checkout of the data costs
one read of each file, not a re-encoding); a changed file or a changed representation id (weights,
version, parameters) is a miss, so stale features are never read; old entries are simply left behind.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ser_tool.files import replaced_atomically
from ser_tool.representations.base import Features, Representation


def content_key(audio_path: str | Path) -> str:
    """sha1 of the file's bytes (read in 1 MiB blocks): the same recording anywhere has the same key."""
    with open(audio_path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


class FeatureCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path_for(self, audio_path: str | Path, rep_id: str) -> Path:
        key = content_key(audio_path)
        folder = re.sub(r"[^A-Za-z0-9._=+-]", "_", rep_id)
        return self.root / folder / key[:2] / f"{key}.npz"

    def get(self, audio_path: str | Path, rep_id: str) -> Features | None:
        return self._read(self.path_for(audio_path, rep_id))

    def put(self, audio_path: str | Path, rep_id: str, feats: Features) -> None:
        self._write(self.path_for(audio_path, rep_id), feats)

    @staticmethod
    def _read(path: Path) -> Features | None:
        try:
            with np.load(path) as z:
                return Features(z["frames"].astype(np.float32), z["utterance"].astype(np.float32))
        except (OSError, KeyError, ValueError):
            return None

    @staticmethod
    def _write(path: Path, feats: Features) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp, tmp.open("wb") as f:  # a killed job never leaves a torn entry
            np.savez(f, frames=feats.frames.astype(np.float16), utterance=feats.utterance.astype(np.float32))

    def features(self, audio_path: str | Path, rep: Representation,
                 load: Callable[[Path], np.ndarray] | None = None) -> Features:
        """Cached features of the file, computing (and storing) them on a miss."""
        path = self.path_for(audio_path, rep.id)
        got = self._read(path)
        if got is not None:
            self.hits += 1
            return got
        self.misses += 1
        if load is None:
            from ser_tool.audio import load_audio as load
        feats = rep.features(load(Path(audio_path)))
        self._write(path, feats)
        return feats
