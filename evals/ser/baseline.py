"""The classical yardstick: utterance-level acoustic statistics + logistic regression.

Features per clip: 20 MFCCs and their deltas (mean and standard deviation over frames), RMS energy,
spectral centroid and zero-crossing rate (mean and std): 86 numbers. StandardScaler + multinomial
logistic regression with balanced class weights; C is picked on the dev split by mean UAR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio
from ser_tool.data import Clip
from ser_tool.labels import EMOTIONS

C_GRID = (0.01, 0.1, 1.0, 10.0)


def acoustic_features(wave: np.ndarray) -> np.ndarray:
    import librosa

    if len(wave) < 2048:
        wave = np.pad(wave, (0, 2048 - len(wave)))
    mfcc = librosa.feature.mfcc(y=wave, sr=SAMPLE_RATE, n_mfcc=20)
    delta = librosa.feature.delta(mfcc, width=min(9, mfcc.shape[1] // 2 * 2 - 1)) if mfcc.shape[1] >= 3 else np.zeros_like(mfcc)
    rms = librosa.feature.rms(y=wave)
    centroid = librosa.feature.spectral_centroid(y=wave, sr=SAMPLE_RATE) / 4000.0
    zcr = librosa.feature.zero_crossing_rate(wave)
    frames = np.vstack([mfcc, delta, np.log(rms + 1e-6), centroid, zcr])
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


def features_for(clips: Sequence[Clip], progress: Callable[[int], None] | None = None) -> np.ndarray:
    out = []
    for clip in clips:
        out.append(acoustic_features(load_audio(clip.path)))
        if progress:
            progress(1)
    return np.stack(out) if out else np.zeros((0, 86), dtype=np.float32)


def fit_and_predict(train: tuple[np.ndarray, np.ndarray], dev: tuple[np.ndarray, np.ndarray] | None,
                    test_x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Fit on train (C chosen on dev), return test probabilities over EMOTIONS and what was chosen."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from evals.ser.metrics import classification_metrics

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
