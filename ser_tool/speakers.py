"""Who speaks when: offline speaker attribution of the detected speech (diarization without overlap).

speech regions -> GE2E speaker embeddings (Resemblyzer, Apache-2.0, weights inside the package) of
1.5-s windows every 0.5 s -> clustering (cosine: Ward on unit vectors, then k-means refinement; the
number of speakers given, or estimated by the silhouette of the clustering) -> majority smoothing -> speaker
turns, numbered 1, 2, ... in order of first speech. The analyzer gives it speech regions whose edges are
rounded to the nearest 0.25 s (SpeechScan.fine_regions), not pushed outwards to 0.5 s: a turn's edges are
part of the answer.

Resemblyzer is an optional dependency (the `voice` extra, installed with --no-deps: see the README); it
is imported only when speakers are asked for. Overlapping speech is not modelled: each moment of speech
gets exactly one speaker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ser_tool.audio import SAMPLE_RATE, AudioSource
from ser_tool.errors import ConfigError

__all__ = [
    "MAX_SPEAKERS", "SpeakerCount", "SpeakerTurn", "SpeakerEncoder", "attribute", "cluster_voices", "diarize",
    "estimate_speakers", "silhouette",
    "embed_windows", "load_speaker_encoder", "parse_speakers", "turns_from_labels",
]

SpeakerCount = int | Literal["auto"]

MAX_SPEAKERS = 8
WINDOW = 1.5  # seconds per embedding window: long enough for a stable voice print, short enough for turns
# seconds between embedding windows. On 90 generated two-speaker dev conversations (benchmarks/diarization.py
# --split dev, and the same kind with other seeds): DER 14.6 % at 0.75 s, 12.8 % at 0.5 s, 12.5 % at 0.25 s (which
# costs the encoder 1.5x again). Longer or shorter windows (1, 2, 2.5 s) did no better.
HOP = 0.5
MIN_WINDOW = 0.4  # speech stretches shorter than this get no embedding of their own (they join a neighbour)
# auto: the number of speakers (2..AUTO_MAX) with the best silhouette of the window embeddings; one speaker
# when even that is below ONE_VOICE_SILHOUETTE. Chosen on generated dev conversations (RAVDESS actors 1-18,
# Emo-DB speakers 03-14; the benchmark reports on the held-out ones): AUTO_MAX 3 beat 4 (62 % vs 42 % right counts).
# The silhouette does not tell one voice from several on acted speech (one actor's emotions form clusters as
# well separated as two actors'), so on real voices "auto" assumes a conversation: give 1 to mean one speaker.
AUTO_MAX = 3
ONE_VOICE_SILHOUETTE = 0.15  # real conversations scored 0.25-0.49 on dev; one isotropic blob ~0.1
OVER_SEGMENT = 2  # first pass: this many times the speakers, to find the changes; second pass: whole turns
MIN_TURN = 1.0  # seconds; a speaker run shorter than this inside one speech region joins its neighbours
SMOOTH = 5  # windows in the majority filter over each region's speaker labels
CHANGE_GRID = 0.25  # seconds: speaker changes are snapped to this grid (bounded model input lengths)
MAX_CLUSTER_WINDOWS = 1500  # more windows than this: cluster an even sample, then assign all to centroids
_TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation target (its mel spectrogram is not log-scaled)
_BATCH = 64


def parse_speakers(value: object) -> SpeakerCount | None:
    """`None`/"" -> None (no attribution); "auto" -> "auto"; an int (or digit string) 1..MAX_SPEAKERS."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if not text.isdigit():
            raise ConfigError(f"speakers must be 'auto' or a number from 1 to {MAX_SPEAKERS}, got {value!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= int(value) <= MAX_SPEAKERS:
        raise ConfigError(f"speakers must be 'auto' or a number from 1 to {MAX_SPEAKERS}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: int  # 1, 2, ... in order of first speech


class SpeakerEncoder:
    """GE2E speaker encoder (Resemblyzer): mel windows -> unit-length 256-d voice embeddings."""

    def __init__(self) -> None:
        try:
            import torch
            from resemblyzer import VoiceEncoder
            from resemblyzer.audio import wav_to_mel_spectrogram
        except ImportError as e:
            raise ConfigError(
                "speaker attribution needs the Resemblyzer speaker encoder, which is not installed: run "
                "`pip install -e '.[voice]'` and then `pip install --no-deps Resemblyzer==0.1.4` "
                f"(its declared webrtcvad needs a compiler; ser-tool brings webrtcvad-wheels). ({e})"
            ) from e
        self._torch = torch
        self._mel = wav_to_mel_spectrogram
        self._model = VoiceEncoder("cpu", verbose=False).eval()
        self._lock = threading.Lock()

    def mel(self, samples: np.ndarray) -> np.ndarray:
        """(frames, 40) mel spectrogram, 10-ms frames, of 16-kHz audio normalised to -30 dBFS."""
        x = np.asarray(samples, dtype=np.float32)
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
        if rms > 0:
            x = x * np.float32(min(10 ** (_TARGET_DBFS / 20) / rms, 1000.0))
        return self._mel(x)

    def embed(self, mels: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (n, 256) of mel windows; windows of equal length run as one batch."""
        out = np.zeros((len(mels), 256), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, m in enumerate(mels):
            by_len.setdefault(len(m), []).append(i)
        with self._lock, self._torch.inference_mode():
            for idx in by_len.values():
                for k in range(0, len(idx), _BATCH):
                    part = idx[k: k + _BATCH]
                    batch = self._torch.from_numpy(np.stack([mels[i] for i in part]))
                    out[part] = self._model(batch).numpy()
        return out


_ENCODER: SpeakerEncoder | None = None
_ENCODER_LOCK = threading.Lock()


def load_speaker_encoder() -> SpeakerEncoder:
    """The process-wide speaker encoder (17 MB of weights, loaded once)."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = SpeakerEncoder()
        return _ENCODER


def window_spans(start: float, end: float, window: float = WINDOW, hop: float = HOP) -> list[tuple[float, float]]:
    """Embedding windows over one speech region: `window` s every `hop` s, the last one ending at `end`;
    a region shorter than `window` is one window (none when shorter than MIN_WINDOW)."""
    if end - start < MIN_WINDOW:
        return []
    if end - start <= window:
        return [(start, end)]
    spans = []
    t = start
    while t + window <= end + 1e-6:
        spans.append((t, t + window))
        t += hop
    if spans[-1][1] < end - 1e-6:
        spans.append((end - window, end))
    return [(round(s, 3), round(e, 3)) for s, e in spans]


def embed_windows(source: AudioSource, regions: Sequence[tuple[float, float]], encoder: SpeakerEncoder,
                  check: Callable[[], None] | None = None) -> tuple[list[tuple[float, float]], np.ndarray]:
    """(window spans, embeddings (n, 256)) over the speech regions, in time order."""
    spans: list[tuple[float, float]] = []
    mels: list[np.ndarray] = []
    frames_per_s = 100  # Resemblyzer's mel hop is 10 ms
    for start, end in regions:
        if check is not None:
            check()
        wins = window_spans(start, end)
        if not wins:
            continue
        mel = encoder.mel(source.read(int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))))
        for s, e in wins:
            a = int(round((s - start) * frames_per_s))
            b = min(len(mel), a + max(1, int(round((e - s) * frames_per_s))))
            if b - a < 2:
                continue
            spans.append((s, e))
            mels.append(mel[a:b])
    if not mels:
        return [], np.zeros((0, 256), dtype=np.float32)
    return spans, encoder.embed(mels)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _refine(x: np.ndarray, labels: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Spherical k-means from a start labelling: each window to the most similar cluster centroid."""
    for _ in range(iterations):
        ids = np.unique(labels)
        centroids = _unit(np.stack([x[labels == k].mean(axis=0) for k in ids]))
        new = ids[np.argmax(x @ centroids.T, axis=1)]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _centroids(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels)
    return ids, _unit(np.stack([x[labels == k].mean(axis=0) for k in ids]))


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine silhouette of a labelling of unit vectors (0 for a single cluster)."""
    ids = np.unique(labels)
    if len(ids) < 2:
        return 0.0
    d = 1.0 - x @ x.T
    member = labels[:, None] == ids[None, :]  # (n, k)
    sizes = member.sum(axis=0)
    mean_to = (d @ member) / np.maximum(sizes, 1)  # mean distance of each point to each cluster (self included)
    own = np.argmax(member, axis=1)
    n_own = sizes[own]
    a = np.where(n_own > 1, mean_to[np.arange(len(x)), own] * n_own / np.maximum(n_own - 1, 1), 0.0)
    mean_to[np.arange(len(x)), own] = np.inf
    b = mean_to.min(axis=1)
    s = np.where(n_own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def _given(x: np.ndarray, k: int) -> np.ndarray:
    """k clusters of unit vectors: Ward (on unit vectors = cosine geometry; unlike average linkage it spends no
    cluster on an outlier) on an even sample, then spherical k-means over all."""
    from scipy.cluster.hierarchy import fcluster, linkage

    sample = np.linspace(0, len(x) - 1, min(len(x), MAX_CLUSTER_WINDOWS)).round().astype(int)
    start = fcluster(linkage(x[sample], method="ward"), k, criterion="maxclust") - 1
    _, centroids = _centroids(x[sample], start)
    return _refine(x, np.argmax(x @ centroids.T, axis=1))


def estimate_speakers(embeddings: np.ndarray, max_speakers: int = AUTO_MAX) -> int:
    """How many voices: the k in 2..max_speakers whose clustering has the best cosine silhouette, or 1 when
    even the best is below ONE_VOICE_SILHOUETTE (no split separates the windows)."""
    x = _unit(np.asarray(embeddings, dtype=np.float64))
    sample = x[np.linspace(0, len(x) - 1, min(len(x), MAX_CLUSTER_WINDOWS)).round().astype(int)]
    best, best_k = -1.0, 1
    for k in range(2, min(max_speakers, len(sample) - 1) + 1):
        score = silhouette(sample, _given(sample, k))
        if score > best:
            best, best_k = score, k
    return best_k if best >= ONE_VOICE_SILHOUETTE else 1


def cluster_voices(embeddings: np.ndarray, speakers: SpeakerCount) -> np.ndarray:
    """Cluster labels (0..k-1) of voice embeddings (n, d): `speakers` clusters (at most n), or with "auto"
    as many as `estimate_speakers` finds."""
    x = _unit(np.asarray(embeddings, dtype=np.float64))
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    k = estimate_speakers(x) if speakers == "auto" else int(speakers)
    k = min(k, n)
    if k == 1:
        return np.zeros(n, dtype=int)
    _, dense = np.unique(_given(x, k), return_inverse=True)
    return dense.astype(int)


def _majority(labels: list[int], width: int) -> list[int]:
    if len(labels) < 3:
        return list(labels)
    half = width // 2
    out = []
    for i in range(len(labels)):
        window = labels[max(0, i - half): i + half + 1]
        values, counts = np.unique(window, return_counts=True)
        best = values[counts == counts.max()]
        out.append(labels[i] if labels[i] in best else int(best[0]))
    return out


def turns_from_labels(regions: Sequence[tuple[float, float]], spans: Sequence[tuple[float, float]],
                      labels: Sequence[int]) -> list[SpeakerTurn]:
    """Speaker turns covering the speech regions, from labelled embedding windows: labels smoothed by a
    majority filter within each region, a change placed between the centres of the windows either side
    (snapped to CHANGE_GRID), runs shorter than MIN_TURN joined to a neighbour, speakers renumbered 1, 2, ...
    by first speech. A region without windows takes the speaker of the nearest window."""
    if not spans:
        return []
    centres = np.array([(s + e) / 2 for s, e in spans])
    raw: list[list] = []  # [start, end, label]
    for start, end in regions:
        inside = [i for i, c in enumerate(centres) if start <= c <= end]
        if not inside:
            mid = (start + end) / 2
            raw.append([start, end, int(labels[int(np.argmin(np.abs(centres - mid)))])])
            continue
        lab = _majority([int(labels[i]) for i in inside], SMOOTH)
        runs: list[list] = []
        for pos, (i, lbl) in enumerate(zip(inside, lab)):
            if runs and runs[-1][2] == lbl:
                continue
            if runs:
                change = (centres[inside[pos - 1]] + centres[i]) / 2
                change = round(change / CHANGE_GRID) * CHANGE_GRID
                change = min(max(change, runs[-1][0] + CHANGE_GRID), end - CHANGE_GRID)
                runs[-1][1] = change
                runs.append([change, end, lbl])
            else:
                runs.append([start, end, lbl])
        # join runs too short to be a turn to the longer neighbour
        while len(runs) > 1:
            lengths = [r[1] - r[0] for r in runs]
            i = int(np.argmin(lengths))
            if lengths[i] >= MIN_TURN:
                break
            if i == 0:
                j = 1
            elif i == len(runs) - 1:
                j = i - 1
            else:
                j = i - 1 if lengths[i - 1] >= lengths[i + 1] else i + 1
            lo, hi = min(i, j), max(i, j)
            runs[lo:hi + 1] = [[runs[lo][0], runs[hi][1], runs[j][2]]]
        merged: list[list] = []
        for r in runs:
            if merged and merged[-1][2] == r[2]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        raw.extend(merged)
    order: dict[int, int] = {}
    for _, _, lbl in raw:
        order.setdefault(lbl, len(order) + 1)
    return [SpeakerTurn(round(float(s), 3), round(float(e), 3), order[lbl]) for s, e, lbl in raw]


def diarize(source: AudioSource, regions: Sequence[tuple[float, float]], speakers: SpeakerCount,
            check: Callable[[], None] | None = None, encoder: SpeakerEncoder | None = None) -> list[SpeakerTurn]:
    """Speaker turns over the speech `regions` of `source`: `speakers` voices, or "auto" to estimate how many."""
    speakers = parse_speakers(speakers)
    if speakers is None:
        raise ConfigError("diarize needs speakers='auto' or a number of speakers")
    encoder = encoder or load_speaker_encoder()
    spans, emb = embed_windows(source, regions, encoder, check)
    if not spans:
        return [SpeakerTurn(s, e, 1) for s, e in regions]
    return attribute(regions, spans, emb, speakers)


def attribute(regions: Sequence[tuple[float, float]], spans: Sequence[tuple[float, float]], embeddings: np.ndarray,
              speakers: SpeakerCount) -> list[SpeakerTurn]:
    """Turns from window embeddings, in two passes: windows clustered into OVER_SEGMENT x k groups give the
    candidate turns (where the voice changes); the turns' mean embeddings - steadier than 1.5-s windows,
    which acted emotion pulls around - are then clustered into the k speakers."""
    x = _unit(np.asarray(embeddings, dtype=np.float64))
    k = estimate_speakers(x) if speakers == "auto" else min(int(speakers), len(x))
    if k == 1:
        return turns_from_labels(regions, spans, np.zeros(len(x), dtype=int))
    candidates = turns_from_labels(regions, spans, cluster_voices(x, min(len(x), OVER_SEGMENT * k)))
    centres = np.array([(a + b) / 2 for a, b in spans])
    means = []
    for t in candidates:
        idx = np.flatnonzero((centres >= t.start) & (centres <= t.end))
        if not len(idx):
            idx = [int(np.argmin(np.abs(centres - (t.start + t.end) / 2)))]
        means.append(x[idx].mean(axis=0))
    labels = cluster_voices(np.stack(means), k)
    turns = turns_from_labels([(t.start, t.end) for t in candidates], [(t.start, t.end) for t in candidates], labels)
    merged: list[SpeakerTurn] = []
    for t in turns:  # candidate turns that touch and got the same speaker are one turn
        if merged and merged[-1].speaker == t.speaker and abs(merged[-1].end - t.start) < 1e-6:
            merged[-1] = SpeakerTurn(merged[-1].start, t.end, t.speaker)
        else:
            merged.append(t)
    return merged
