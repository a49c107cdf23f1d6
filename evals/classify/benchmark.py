"""Run a backend over the clips of a split and score it, with the classical baseline beside it.

Utterance-level protocol, as the corpora intend it: each clip is one input to the model (cut to
the model's longest input if needed), with no voice-activity trimming. Each clip is brought to one
speech level first, as the analyzer does (ser_tool.level.model_inputs), unless the backend
normalises its own input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio
from ser_tool.backends import Backend
from ser_tool.data import SPLITS, Clip, read_corpus, split_by_speaker, vad_target
from ser_tool.errors import AudioError, ConfigError
from ser_tool.labels import DIMENSIONS, EMOTIONS
from ser_tool.level import input_level_db, model_inputs
from ser_tool.train.calibration import ece_noise_floor, expected_calibration_error

from evals.classify.metrics import FOUR_CLASS, ccc, classification_metrics, restrict

Progress = Callable[[int], None]
ProgressFactory = Callable[[int | None, str], Any]  # (total, description) -> a bar with update(n) and close()


@dataclass
class Predictions:
    clips: list[Clip]
    probabilities: np.ndarray  # (N, 7)
    dimensions: np.ndarray | None  # (N, 3)
    failed: list[tuple[str, str]]  # (path, error) for clips that could not be decoded


def select_clips(corpus_dirs: Sequence[str | Path], split: str, limit: int | None = None) -> tuple[list[Clip], dict]:
    """Clips of `split` ('train' | 'dev' | 'test' | 'all') from the corpora, and what was dropped."""
    clips, dropped = [], {}
    for folder in corpus_dirs:
        corpus = read_corpus(folder)
        clips += corpus.clips
        if corpus.dropped:
            dropped[corpus.name] = dict(corpus.dropped)
    chosen = clips if split == "all" else split_by_speaker(clips)[split]
    if limit:
        rng = np.random.default_rng(0)
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), size=min(limit, len(chosen)), replace=False))]
    return chosen, dropped


def predict_clips(backend: Backend, clips: Sequence[Clip], batch_size: int = 16, progress: Progress | None = None,
                  normalise_loudness: bool = True,
                  on_decoded: Callable[[Clip, np.ndarray], None] | None = None) -> Predictions:
    """normalise_loudness: bring each clip to the backend's speech level first, as the analyzer does.
    on_decoded(clip, wave): called with each decoded clip as recorded (so a caller measuring the audio itself
    does not decode it again). Clips that cannot be decoded are listed in `failed`; when none can, an
    AudioError names the first, as there is nothing to score."""
    max_len = int(backend.max_input_seconds * SAMPLE_RATE) if backend.max_input_seconds else None
    kept, probs, dims, failed = [], [], [], []
    for i in range(0, len(clips), batch_size):
        batch, waves = [], []
        for clip in clips[i: i + batch_size]:
            try:
                wave = load_audio(clip.path)
            except AudioError as e:
                failed.append((str(clip.path), str(e)))
                continue
            if on_decoded is not None:
                on_decoded(clip, wave)
            batch.append(clip)
            waves.append(wave[:max_len] if max_len else wave)
        if waves:
            pred = backend.predict(model_inputs(backend, waves, normalise_loudness))
            probs.append(pred.probabilities)
            if pred.dimensions is not None:
                dims.append(pred.dimensions)
            kept += batch
        if progress:
            progress(len(clips[i: i + batch_size]))
    if clips and not kept:
        raise AudioError(f"none of the {len(clips)} clips could be decoded (the first: {failed[0][1]}); check the audio "
                         "files the manifest names")
    return Predictions(
        kept,
        np.concatenate(probs) if probs else np.zeros((0, len(EMOTIONS))),
        np.concatenate(dims) if dims and len(dims) == len(probs) else None,
        failed,
    )


def score(clips: Sequence[Clip], probabilities: np.ndarray, dimensions: np.ndarray | None) -> dict:
    """7-class and 4-class metrics, ECE (15 bins) with its sampling floor, and CCC per dimension, overall, per corpus and per language."""
    y = np.array([EMOTIONS.index(c.label) for c in clips], dtype=int)

    def block(mask: np.ndarray) -> dict:
        out = {"7class": classification_metrics(y[mask], probabilities[mask].argmax(axis=1), EMOTIONS),
               # of the probabilities as the model gives them (a voice head's include its fitted temperature)
               "ece": expected_calibration_error(probabilities[mask], y[mask]),
               # what sampling alone gives on these clips: the ECE of a perfectly calibrated model, median and 95th pct
               "ece_floor": list(ece_noise_floor(probabilities[mask]))}
        t4, p4 = restrict(probabilities[mask], y[mask], EMOTIONS, FOUR_CLASS)
        out["4class"] = classification_metrics(t4, p4, FOUR_CLASS)
        if dimensions is not None:
            sel = [c for c, m in zip(clips, mask) if m]
            rated = all(c.dimensions is not None for c in sel)
            target = np.array([c.dimensions if rated else vad_target(c.label, c.intensity) for c in sel])
            out["ccc"] = {
                "targets": "human ratings from the manifest" if rated else "category anchors (NRC VAD lexicon), not human ratings",
                **{d: ccc(target[:, k], dimensions[mask][:, k]) for k, d in enumerate(DIMENSIONS)},
            }
        return out

    every = np.ones(len(clips), dtype=bool)
    return {
        "overall": block(every),
        "per_corpus": {name: block(np.array([c.corpus == name for c in clips])) for name in sorted({c.corpus for c in clips})},
        "per_language": {lang: block(np.array([c.language == lang for c in clips])) for lang in sorted({c.language for c in clips})},
    }


def run_baseline(corpus_dirs: Sequence[str | Path], test_clips: Sequence[Clip], progress: Progress | None = None, *,
                 progress_factory: ProgressFactory | None = None, feature_cache: str | Path | None = None,
                 jobs: int = 1) -> dict:
    """Fit the classical baseline on the train split of `corpus_dirs` (dev split picks C); score it on `test_clips`.

    feature_cache: a folder that keeps the clips' features between runs (see baseline.FeatureCache); jobs:
    worker processes for the features not cached yet. progress_factory(total, desc) makes the progress bar
    (its total: every clip whose features are needed); `progress` alone is called with counts."""
    from evals.classify.baseline import FeatureCache, features_for, fit_and_predict

    test_paths = {c.path for c in test_clips}
    # never fit on a clip being scored (split 'all' scores every clip of the evaluated corpora)
    train = [c for c in select_clips(corpus_dirs, "train")[0] if c.path not in test_paths]
    dev = [c for c in select_clips(corpus_dirs, "dev")[0] if c.path not in test_paths]
    if not train:
        raise ConfigError("the baseline has no training clips: with --split all, name the corpora to fit it on with --baseline-train")
    label = lambda cs: np.array([EMOTIONS.index(c.label) for c in cs], dtype=int)  # noqa: E731
    cache = FeatureCache(feature_cache) if feature_cache is not None else None
    bar = progress_factory(len(train) + len(dev) + len(test_clips), "baseline features") if progress_factory else None
    update = bar.update if bar is not None else progress
    try:
        x_train, x_dev, x_test = (features_for(cs, update, cache=cache, jobs=jobs) for cs in (train, dev, test_clips))
    finally:
        if bar is not None:
            bar.close()
    probs, chosen = fit_and_predict((x_train, label(train)), (x_dev, label(dev)) if dev else None, x_test)
    return {"description": "MFCC+delta, RMS, centroid, ZCR statistics + logistic regression",
            "fitted_on": [str(Path(d).resolve()) for d in corpus_dirs], **chosen,
            "metrics": score(test_clips, probs, None)}


def _loudness(backend: Backend, normalise: bool) -> str:
    level = input_level_db(backend)
    if not normalise:
        return "as recorded"
    return "the backend normalises its own input" if level is None else f"each clip brought to {level:g} dBFS active speech level"


def run_header(kind: str, backend: Backend, corpus_dirs: Sequence[str | Path], split: str) -> dict:
    """The fields every scoring run's report.json starts with: what ran, on what, when."""
    return {
        "kind": kind,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.name,
        "model_id": backend.model_id,
        "data": [str(Path(d).resolve()) for d in corpus_dirs],
        "split": split,
    }


def benchmark(backend: Backend, corpus_dirs: Sequence[str | Path], split: str = "test", *, baseline: bool = True,
              baseline_train: Sequence[str | Path] | None = None, limit: int | None = None, batch_size: int = 16,
              progress_factory: ProgressFactory | None = None, normalise_loudness: bool = True,
              feature_cache: str | Path | None = None, jobs: int = 1) -> dict:
    """The full SER benchmark report (a JSON-serialisable dict).

    baseline_train: corpora whose train split fits the baseline (default: the evaluated corpora). For a
    cross-corpus test (`split='all'` on a corpus the model never saw), name the model's training corpora.
    feature_cache, jobs: where the baseline keeps its features between runs (None: not kept), and how many
    worker processes compute the missing ones. progress_factory(total, desc): a progress bar per phase.
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    clips, dropped = select_clips(corpus_dirs, split, limit)
    bar = progress_factory(len(clips), "model") if progress_factory else None
    pred = predict_clips(backend, clips, batch_size, bar.update if bar is not None else None, normalise_loudness)
    if bar is not None:
        bar.close()
    report = {
        **run_header("ser-benchmark", backend, corpus_dirs, split),
        "split_rule": "speaker-independent, per corpus: speakers sorted by id, last 25% test, the 10% before dev (ser_tool.data.split_by_speaker)",
        "protocol": "utterance-level: one model input per clip; calm counted as neutral; labels without an emotion counterpart dropped",
        "loudness": _loudness(backend, normalise_loudness),
        "labels_dropped": dropped,
        "n_clips": len(pred.clips),
        "failed_clips": pred.failed,
        "metrics": score(pred.clips, pred.probabilities, pred.dimensions),
    }
    if baseline:
        report["baseline"] = run_baseline(baseline_train or corpus_dirs, pred.clips, progress_factory=progress_factory,
                                          feature_cache=feature_cache, jobs=jobs)
    return report
