"""The classical yardstick: utterance-level acoustic statistics + logistic regression.

Features per clip: 20 MFCCs and their deltas (mean and standard deviation over frames), RMS energy,
spectral centroid and zero-crossing rate (mean and std): 86 numbers. StandardScaler + multinomial
logistic regression with balanced class weights; C is picked on the dev split by mean UAR.

Features are what takes the time (hours of audio to decode and analyse), so they are computed once
per file: `FeatureCache` keeps them on disk, keyed by the file (path, size, modification time) and
the feature settings, and `features_for` computes the missing ones in worker processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio
from ser_tool.data import Clip
from ser_tool.files import replaced_atomically
from ser_tool.labels import EMOTIONS

C_GRID = (0.01, 0.1, 1.0, 10.0)
N_FEATURES = 86
N_FFT, HOP, N_MFCC = 2048, 512, 20
# Everything the numbers depend on: a change here starts a new cache file instead of reusing stale features.
FEATURE_SETTINGS = (f"mfcc{N_MFCC}+delta9 mean/std, log rms, centroid/4000, zcr; n_fft {N_FFT}, hop {HOP}, "
                    f"{SAMPLE_RATE} Hz, librosa mel (htk=False, slaney); v1")

_MEL: np.ndarray | None = None
_CHUNK = 16  # clips per task sent to a worker process
_POOL_MIN = 64  # fewer clips to compute than this: no worker processes


def acoustic_features(wave: np.ndarray) -> np.ndarray:
    """The 86 features of one 16 kHz mono waveform.

    The numbers librosa.feature.mfcc / spectral_centroid / rms / zero_crossing_rate give with their
    defaults, but from one shared STFT (librosa computes it twice) and the mel filterbank built once."""
    import librosa
    import scipy.fft

    global _MEL
    if _MEL is None:
        _MEL = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT)
    if len(wave) < N_FFT:
        wave = np.pad(wave, (0, N_FFT - len(wave)))
    magnitude = np.abs(librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="constant"))
    mfcc = scipy.fft.dct(librosa.power_to_db(_MEL @ magnitude**2), axis=-2, type=2, norm="ortho")[:N_MFCC]
    delta = librosa.feature.delta(mfcc, width=min(9, mfcc.shape[1] // 2 * 2 - 1)) if mfcc.shape[1] >= 3 else np.zeros_like(mfcc)
    rms = librosa.feature.rms(y=wave)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=SAMPLE_RATE, n_fft=N_FFT) / 4000.0
    zcr = librosa.feature.zero_crossing_rate(wave)
    frames = np.vstack([mfcc, delta, np.log(rms + 1e-6), centroid, zcr])
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


def file_features(paths: Sequence[str]) -> list[np.ndarray]:
    """Features of each file, with one BLAS thread: the matrices are small, and on a busy machine several
    BLAS threads per process only wait on each other (the mel projection ran 15x slower with two)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return [acoustic_features(load_audio(path)) for path in paths]


class FeatureCache:
    """Baseline features on disk: one file per feature-settings version in `folder`, a row per audio file,
    keyed by the file's content (ser_tool.representations.cache.content_key: a copied or restored corpus keeps
    its rows; an edited or replaced file is computed again).

    A damaged or unreadable cache file counts as empty and is rewritten; writes are atomic."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        digest = hashlib.sha256(FEATURE_SETTINGS.encode()).hexdigest()[:12]
        self.path = self.folder / f"baseline-features-{digest}.npz"
        self._rows: dict[str, np.ndarray] = {}
        self._dirty = False
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys, values = data["keys"], data["features"]
                if values.ndim == 2 and values.shape == (len(keys), N_FEATURES):
                    self._rows = {str(k): v for k, v in zip(keys, values)}
        except (OSError, ValueError, KeyError, EOFError):
            self._rows = {}

    @staticmethod
    def key(path: str | Path) -> str | None:
        from ser_tool.representations.cache import content_key

        try:
            return content_key(path)
        except OSError:
            return None

    def get(self, path: str | Path) -> np.ndarray | None:
        key = self.key(path)
        return None if key is None else self._rows.get(key)

    def put(self, path: str | Path, features: np.ndarray) -> None:
        key = self.key(path)
        if key is not None:
            self._rows[key] = np.asarray(features, dtype=np.float32)
            self._dirty = True

    def __len__(self) -> int:
        return len(self._rows)

    def save(self) -> None:
        """Write the cache if anything was added. A folder that cannot be written only costs the reuse."""
        if not self._dirty:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self._rows), dtype=str)
            values = np.stack(list(self._rows.values())) if self._rows else np.zeros((0, N_FEATURES), np.float32)
            with replaced_atomically(self.path) as tmp, tmp.open("wb") as f:
                np.savez(f, keys=keys, features=values)
            self._dirty = False
        except OSError:
            pass


def features_for(clips: Sequence[Clip], progress: Callable[[int], None] | None = None, *,
                 cache: FeatureCache | None = None, jobs: int = 1, save_every: int = 500) -> np.ndarray:
    """The features of `clips` in order: from `cache` where it has them, the others computed (in `jobs` worker
    processes when there are many) and added to it. A clip that cannot be decoded raises its AudioError."""
    rows: list[np.ndarray | None] = [cache.get(c.path) if cache is not None else None for c in clips]
    todo = [i for i, r in enumerate(rows) if r is None]
    if progress and len(todo) < len(clips):
        progress(len(clips) - len(todo))
    chunks = [todo[i: i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
    # worker processes take a few seconds to start (librosa): worth it for more than a few dozen clips
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=_spawn()) if jobs > 1 and len(todo) > _POOL_MIN else None
    try:
        results = (pool.map(file_features, ([str(clips[i].path) for i in c] for c in chunks)) if pool is not None
                   else (file_features([str(clips[i].path) for i in c]) for c in chunks))
        since_save = 0
        for indices, features in zip(chunks, results):
            for i, f in zip(indices, features):
                rows[i] = f
                if cache is not None:
                    cache.put(clips[i].path, f)
            since_save += len(indices)
            if cache is not None and since_save >= save_every:  # an interrupted run keeps most of its work
                cache.save()
                since_save = 0
            if progress:
                progress(len(indices))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if cache is not None:
            cache.save()
    return np.stack(rows) if rows else np.zeros((0, N_FEATURES), dtype=np.float32)


def _spawn():
    # fresh worker processes: the parent has torch and its thread pools loaded, which a fork would copy mid-state
    import multiprocessing

    return multiprocessing.get_context("spawn")


def fit_and_predict(train: tuple[np.ndarray, np.ndarray], dev: tuple[np.ndarray, np.ndarray] | None,
                    test_x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Fit on train (C chosen on dev), return test probabilities over EMOTIONS and what was chosen."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from evals.classify.metrics import classification_metrics

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed))

    x, y = train
    best_c, best_uar = C_GRID[0], -1.0
    if dev is not None and len(dev[1]):
        for c in C_GRID:
            pred = model(c).fit(x, y).predict(dev[0])
            uar = classification_metrics(dev[1], pred, EMOTIONS)["uar"]
            if uar > best_uar:
                best_c, best_uar = c, uar
    clf = model(best_c).fit(x, y)
    probs = np.zeros((len(test_x), len(EMOTIONS)))
    if len(test_x):
        probs[:, clf.classes_] = clf.predict_proba(test_x)
    return probs, {"C": best_c, "dev_uar": best_uar if best_uar >= 0 else None, "n_train": int(len(y))}
