"""Disk cache of representation features, keyed by (file path, size, mtime) and representation id.

Layout: ROOT/<representation id>/<2 hex>/<sha1>.npz with `frames` (float16) and `utterance`
(float32). A changed file (size or mtime) or a changed representation id (weights, version,
parameters) is a miss, so stale features are never read; old entries are simply left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ser_tool.representations.base import Features, Representation


class FeatureCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path_for(self, audio_path: str | Path, rep_id: str) -> Path:
        p = Path(audio_path).resolve()
        st = p.stat()
        key = hashlib.sha1(f"{p}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
        folder = re.sub(r"[^A-Za-z0-9._=+-]", "_", rep_id)
        return self.root / folder / key[:2] / f"{key}.npz"

    def get(self, audio_path: str | Path, rep_id: str) -> Features | None:
        path = self.path_for(audio_path, rep_id)
        try:
            with np.load(path) as z:
                return Features(z["frames"].astype(np.float32), z["utterance"].astype(np.float32))
        except (OSError, KeyError, ValueError):
            return None

    def put(self, audio_path: str | Path, rep_id: str, feats: Features) -> None:
        path = self.path_for(audio_path, rep_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:  # write then rename: a killed job never leaves a torn entry
            np.savez(f, frames=feats.frames.astype(np.float16), utterance=feats.utterance.astype(np.float32))
        os.replace(tmp, path)

    def features(self, audio_path: str | Path, rep: Representation,
                 load: Callable[[Path], np.ndarray] | None = None) -> Features:
        """Cached features of the file, computing (and storing) them on a miss."""
        got = self.get(audio_path, rep.id)
        if got is not None:
            self.hits += 1
            return got
        self.misses += 1
        if load is None:
            from ser_tool.audio import load_audio as load
        feats = rep.features(load(Path(audio_path)))
        self.put(audio_path, rep.id, feats)
        return feats
