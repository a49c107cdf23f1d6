"""Training the voice head on cached frozen features with the hybrid objective.

Recipe: each epoch every corpus contributes at most `corpus_cap` random training clips (one large
corpus must not swamp the others); class weights follow the counts seen per epoch. A batch is a
random crop of 1.6-3 s (40-75 frames; capped by its shortest clip) of each clip's frame sequence, with feature
augmentation (time and channel masking, MixUp p 0.5 Beta(0.3, 0.3) of frames, class and V/A/D
targets). AdamW, warm-up then cosine decay; the epoch with the best dev UAR (mean over dev
corpora) is kept. Dev and test clips are scored whole. Calibration: the prior shift undoes the class
weights (`prior_shift`), then a temperature is fitted on dev.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ser_tool.labels import EMOTIONS
from ser_tool.level import TARGET_DB
from ser_tool.train.calibration import ece_noise_floor, expected_calibration_error, fit_temperature, prior_shift

Log = Callable[[str], None]


@dataclass(frozen=True)
class VoiceTrainConfig:
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    crop_frames: tuple[int, int] = (40, 75)  # 1.6-3 s at 25 frames/s
    time_mask: float = 0.1  # fraction of frames zeroed (after standardisation: set to the mean) per clip
    channel_mask: float = 0.1
    mixup_p: float = 0.5
    mixup_alpha: float = 0.3
    corpus_cap: int = 600
    label_smoothing: float = 0.1
    ccc_weight: float = 0.5
    channels: int = 96
    dropout: float = 0.2
    seed: int = 0
    heads: int = 1  # > 1: that many heads, seeds seed, seed+1, ..., averaged (VoiceHeadEnsemble)
    degraded_variants: int = 0  # training clips also as this many noisy / reverberant / telephone copies
    # every clip brought to this active speech level before the representation, as the analyzer hands the voice
    # backend its input (ser_tool.level); None: features of the clips at their recorded levels
    input_level_db: float | None = TARGET_DB
    # 0: keep the epoch with the best dev UAR. N > 0: keep the running average of the weights after every step from
    # epoch N on (stochastic weight averaging, as SWAD uses for domain generalisation: a flatter optimum)
    average_from: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.average_from <= self.epochs:
            from ser_tool.errors import ConfigError

            raise ConfigError(f"the weights can be averaged from an epoch in 1..{self.epochs} (the epochs trained), or 0 "
                              f"to keep the best epoch; got {self.average_from}")


@dataclass
class FrameSet:
    """Frame sequences (each (T_i, D)) with their labels, V/A/D targets and corpus names."""

    frames: list[np.ndarray]
    labels: np.ndarray
    dims: np.ndarray
    corpora: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def predict_frames(model, frames: Sequence[np.ndarray], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Whole-sequence logits (N, 7) and dimensions (N, 3); sequences of equal length share a batch."""
    import torch

    model.eval()
    logits = np.zeros((len(frames), len(EMOTIONS)), dtype=np.float32)
    dims = np.zeros((len(frames), 3), dtype=np.float32)
    by_len: dict[int, list[int]] = {}
    for i, f in enumerate(frames):
        by_len.setdefault(len(f), []).append(i)
    with torch.inference_mode():
        for idx in by_len.values():
            for s in range(0, len(idx), batch_size):
                ix = idx[s: s + batch_size]
                lo, d = model(torch.from_numpy(np.stack([frames[i] for i in ix]).astype(np.float32)))
                logits[ix], dims[ix] = lo.numpy(), d.numpy()
    return logits, dims


def uar(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def train_voice_head(train: FrameSet, dev: FrameSet, representations: Sequence[str], cfg: VoiceTrainConfig | None = None,
                     log: Log = print):
    """Train a VoiceHead; returns (model with fitted temperature, summary dict)."""
    import torch

    from ser_tool.backends.voice_model import VoiceHead, VoiceHeadConfig
    from ser_tool.train.loss import HybridLoss, class_weights

    cfg = cfg or VoiceTrainConfig()
    started = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dim = train.frames[0].shape[1]
    model = VoiceHead(VoiceHeadConfig(dim, tuple(representations), channels=cfg.channels, dropout=cfg.dropout))
    stacked = np.concatenate(train.frames[:: max(1, len(train) // 2000)]).astype(np.float32)
    model.feat_mean.copy_(torch.from_numpy(stacked.mean(axis=0)))
    model.feat_std.copy_(torch.from_numpy(stacked.std(axis=0) + 1e-3))

    by_corpus = {c: np.flatnonzero(train.corpora == c) for c in sorted(set(train.corpora))}
    per_epoch = {c: min(len(ix), cfg.corpus_cap) for c, ix in by_corpus.items()}
    expected = np.zeros(len(EMOTIONS))
    for c, ix in by_corpus.items():
        labelled = train.labels[ix][train.labels[ix] >= 0]  # -1: an arousal-only clip (no category)
        expected += np.bincount(labelled, minlength=len(EMOTIONS)) * per_epoch[c] / len(ix)
    loss_fn = HybridLoss(class_weights(expected), cfg.label_smoothing, cfg.ccc_weight)
    steps = max(1, sum(per_epoch.values()) // cfg.batch_size)
    total, warm = steps * cfg.epochs, max(1, int(steps * cfg.warmup_epochs))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    best, best_state, history, stopped = None, None, [], None
    average = WeightAverage(model) if cfg.average_from else None
    for epoch in range(cfg.epochs):
        model.train()
        order = np.concatenate([rng.choice(ix, per_epoch[c], replace=False) for c, ix in by_corpus.items()])
        rng.shuffle(order)
        try:
            total_loss = _epoch(model, loss_fn, opt, sched, train, order, steps, cfg, rng,
                                average.add if average and epoch + 1 >= cfg.average_from else None)
            logits, per_corpus, mean_uar = _dev_uar(model, dev)
        except KeyboardInterrupt:  # Ctrl-C: the best epoch so far is kept, as `ser train` does for the compact model
            if best_state is None:
                raise
            stopped = epoch + 1
            log(f"  interrupted in epoch {stopped}: this head stops here with its best epoch so far ({best['epoch']})")
            break
        rec = {"epoch": epoch + 1, "train_loss": total_loss / steps, "dev_uar": per_corpus, "dev_mean_uar": mean_uar,
               "elapsed_s": round(time.time() - started, 1)}
        history.append(rec)
        improved = best is None or mean_uar > best["dev_mean_uar"]
        if improved:
            best = rec
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log(f"  epoch {epoch + 1:2d} loss {rec['train_loss']:.3f} dev UAR " + " ".join(f"{c}={u:.3f}" for c, u in per_corpus.items())
            + f" mean {mean_uar:.3f}{' *' if improved else ''} ({rec['elapsed_s']:.0f} s)")
    averaged = None
    if average and average.count:
        model.load_state_dict(average.state())
        logits, per_corpus, mean_uar = _dev_uar(model, dev)
        averaged = {"from_epoch": cfg.average_from, "steps": average.count, "dev_uar": per_corpus, "dev_mean_uar": mean_uar}
        log(f"  weights averaged over {average.count} steps from epoch {cfg.average_from}: dev UAR "
            + " ".join(f"{c}={u:.3f}" for c, u in per_corpus.items()) + f" mean {mean_uar:.3f}")
    else:  # the best epoch (also when training stopped before the averaging began)
        model.load_state_dict(best_state)
    shift = prior_shift(loss_fn.weights.numpy())
    model.prior_shift.copy_(torch.from_numpy(shift))
    logits, _ = predict_frames(model, dev.frames)
    temperature = fit_temperature(logits, dev.labels)
    model.temperature.fill_(temperature)
    model.eval()
    return model, {"config": cfg.__dict__, "best": best, "averaged": averaged, "history": history, "temperature": temperature,
                   "prior_shift": [round(float(v), 4) for v in shift],
                   "interrupted_in_epoch": stopped, "train_seconds": round(time.time() - started, 1),
                   "parameters": sum(p.numel() for p in model.parameters())}


def _dev_uar(model, dev: FrameSet) -> tuple[np.ndarray, dict[str, float], float]:
    """The model's dev logits, its UAR per dev corpus and their mean (what picks the best epoch)."""
    logits, _ = predict_frames(model, dev.frames)
    pred = logits.argmax(axis=1)
    per_corpus = {c: uar(dev.labels[dev.corpora == c], pred[dev.corpora == c]) for c in sorted(set(dev.corpora))}
    return logits, per_corpus, float(np.mean(list(per_corpus.values())))


class WeightAverage:
    """The running mean of a model's parameters and buffers over the steps it is `add`ed after."""

    def __init__(self, model) -> None:
        self.model, self.count, self.sum = model, 0, None

    def add(self) -> None:
        state = {k: v.detach().double() for k, v in self.model.state_dict().items() if v.is_floating_point()}
        if self.sum is None:
            self.sum = {k: v.clone() for k, v in state.items()}
        else:
            for k, v in state.items():
                self.sum[k] += v
        self.count += 1

    def state(self) -> dict:
        current = self.model.state_dict()
        return {k: (self.sum[k] / self.count).to(v.dtype) if k in self.sum else v for k, v in current.items()}


def _epoch(model, loss_fn, opt, sched, train: FrameSet, order: np.ndarray, steps: int, cfg: VoiceTrainConfig,
           rng: np.random.Generator, after_step: Callable[[], None] | None = None) -> float:
    """One epoch of random crops (time and channel masks) through hybrid_step; returns the summed loss.
    after_step: called after every optimiser step (the weight average)."""
    import torch

    from ser_tool.train.loss import hybrid_step

    dim, mean = train.frames[0].shape[1], model.feat_mean.numpy()  # masked stretches take the training mean
    total_loss = 0.0
    for b in range(steps):
        idx = order[b * cfg.batch_size: (b + 1) * cfg.batch_size]
        shortest = min(len(train.frames[i]) for i in idx)
        length = max(1, min(int(rng.integers(cfg.crop_frames[0], cfg.crop_frames[1] + 1)), shortest))
        x = np.empty((len(idx), length, dim), dtype=np.float32)
        for row, i in enumerate(idx):
            f = train.frames[i]
            s = int(rng.integers(0, len(f) - length + 1))
            x[row] = f[s: s + length]
            if cfg.time_mask and length > 4:  # masked stretches take the training mean (0 after standardising)
                w = int(rng.integers(0, max(1, int(cfg.time_mask * length)) + 1))
                t0 = int(rng.integers(0, length - w + 1))
                x[row, t0: t0 + w] = mean
            if cfg.channel_mask:
                ch = rng.random(dim) < cfg.channel_mask
                x[row][:, ch] = mean[ch]
        losses = hybrid_step(model, loss_fn, opt, sched, torch.from_numpy(x), train.labels[idx], train.dims[idx], rng,
                             cfg.mixup_p, cfg.mixup_alpha)
        total_loss += float(losses["loss"].detach())
        if after_step:
            after_step()
    return total_loss


def train_voice_heads(train: FrameSet, dev: FrameSet, representations: Sequence[str], cfg: VoiceTrainConfig | None = None,
                      log: Log = print):
    """cfg.heads heads (seeds cfg.seed, cfg.seed + 1, ...), each trained and calibrated as train_voice_head does;
    returns (one VoiceHead, or their VoiceHeadEnsemble, summary dict). Averaging a few seeds steadies
    the held-out scores and the calibration of a head trained on little data (see the voice model card)."""
    from dataclasses import replace

    from ser_tool.backends.voice_model import VoiceHeadEnsemble

    cfg = cfg or VoiceTrainConfig()
    if cfg.heads <= 1:
        model, summary = train_voice_head(train, dev, representations, cfg, log=log)
        stopped = summary["interrupted_in_epoch"]
        return model, {**summary, "interrupted": {"head": 1, "epoch": stopped} if stopped else None}
    models, runs, interrupted = [], [], None
    for k in range(cfg.heads):  # Ctrl-C: the heads that finished (and the cut head's best epoch, if it had one) are kept
        log(f"head {k + 1} of {cfg.heads} (seed {cfg.seed + k})")
        try:
            model, summary = train_voice_head(train, dev, representations, replace(cfg, seed=cfg.seed + k), log=log)
        except KeyboardInterrupt:
            if not models:
                raise
            interrupted = {"head": k + 1, "epoch": None}
            log(f"interrupted in head {k + 1} before its first epoch ended: the {len(models)} finished head(s) are kept")
            break
        models.append(model)
        runs.append(summary)
        if summary["interrupted_in_epoch"]:
            interrupted = {"head": k + 1, "epoch": summary["interrupted_in_epoch"]}
            break
    if len(models) == 1:
        return models[0], {**runs[0], "interrupted": interrupted}
    ensemble = VoiceHeadEnsemble(models).eval()
    _, dev_uar, mean_uar = _dev_uar(ensemble, dev)
    log("ensemble dev UAR " + " ".join(f"{c}={u:.3f}" for c, u in dev_uar.items()) + f" mean {mean_uar:.3f}")
    return ensemble, {"config": cfg.__dict__, "heads": runs, "dev_uar": dev_uar,
                      "temperature": float(np.mean([r["temperature"] for r in runs])),
                      "temperatures": [r["temperature"] for r in runs], "prior_shift": runs[0]["prior_shift"],
                      "train_seconds": round(sum(r["train_seconds"] for r in runs), 1), "interrupted": interrupted,
                      "parameters": sum(p.numel() for p in ensemble.parameters())}


def head_logits(model, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One pass of each head of `model` (a VoiceHead or an ensemble): its logits as trained, before the prior shift
    and the temperature (H, N, 7); the prior shifts (H, 7) and temperatures (H,); the valence/arousal/dominance
    averaged over the heads (N, 3)."""
    heads = list(getattr(model, "heads", [model]))
    shifts = np.stack([h.prior_shift.numpy() for h in heads]).astype(np.float32)
    temperatures = np.array([float(h.temperature) for h in heads], dtype=np.float32)
    if not frames:
        return np.zeros((len(heads), 0, len(EMOTIONS)), np.float32), shifts, temperatures, np.zeros((0, 3), np.float32)
    passes = [predict_frames(h, frames) for h in heads]  # the forward gives (logits + shift) / T: undone here
    logits = np.stack([lo * t - s for (lo, _), t, s in zip(passes, temperatures, shifts)]).astype(np.float32)
    return logits, shifts, temperatures, np.mean([dims for _, dims in passes], axis=0)


def ensemble_probabilities(logits: np.ndarray, shifts: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """softmax((logits[h] + shifts[h]) / temperatures[h]) averaged over the heads h: the calibrated probabilities,
    as VoiceHeadEnsemble.forward gives them (logits as head_logits returns them)."""
    from scipy.special import softmax

    return np.mean([softmax((z + s) / t, axis=1) for z, s, t in zip(logits, shifts, temperatures)], axis=0)


def head_outputs(model, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated, uncalibrated) probabilities of `model` (a VoiceHead or an ensemble: the average over its heads,
    as VoiceHeadEnsemble.forward) and its valence/arousal/dominance (N, 3), averaged over the heads, from one pass
    of each head; uncalibrated = the logits as trained (before the prior shift and the temperature)."""
    from scipy.special import softmax

    logits, shifts, temperatures, dims = head_logits(model, frames)
    return ensemble_probabilities(logits, shifts, temperatures), np.mean(softmax(logits, axis=2), axis=0), dims


class ClipFeatures:
    """Frozen features of clips for one or more representations, read through the disk cache and
    held in memory (frames as float16). Several representations are fused by concatenating their
    frames (cut to the shorter sequence; all run at 25 frames/s) and their utterance vectors."""

    def __init__(self, cache, reps: Sequence) -> None:
        self.cache = cache
        self.reps = {r.name: r for r in reps}
        self._memo: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def one(self, path, name: str) -> tuple[np.ndarray, np.ndarray]:
        key = (str(path), name)
        if key not in self._memo:
            f = self.cache.features(path, self.reps[name])
            self._memo[key] = (f.frames.astype(np.float16), f.utterance.astype(np.float32))
        return self._memo[key]

    def frames(self, path, names: Sequence[str]) -> np.ndarray:
        parts = [self.one(path, n)[0] for n in names]
        t = min(len(p) for p in parts)
        return np.concatenate([p[:t] for p in parts], axis=1) if len(parts) > 1 else parts[0]

    def utterance(self, path, names: Sequence[str]) -> np.ndarray:
        return np.concatenate([self.one(path, n)[1] for n in names])

    def frame_set(self, clips, names: Sequence[str]) -> FrameSet:
        from ser_tool.data import vad_target

        return FrameSet(
            [self.frames(c.path, names) for c in clips],
            np.array([EMOTIONS.index(c.label) for c in clips], dtype=np.int64),
            np.array([c.dimensions or vad_target(c.label, c.intensity) for c in clips], dtype=np.float32).reshape(-1, 3),
            np.array([c.corpus for c in clips], dtype=object),
        )


def arousal_set(feats: ClipFeatures, clips, names: Sequence[str]) -> FrameSet:
    """Clips with an expressed-emotion level and no category (ser_tool.data.LevelClip) as arousal-only training
    examples: no category (label -1), arousal at the level's LEVEL_AROUSAL, valence and dominance unknown (NaN)."""
    from ser_tool.data import LEVEL_AROUSAL

    return FrameSet([feats.frames(c.path, names) for c in clips], np.full(len(clips), -1, dtype=np.int64),
                    np.array([(np.nan, LEVEL_AROUSAL[c.level], np.nan) for c in clips], dtype=np.float32).reshape(-1, 3),
                    np.array([c.corpus for c in clips], dtype=object))


def joined(*sets: FrameSet) -> FrameSet:
    return FrameSet([f for s in sets for f in s.frames], np.concatenate([s.labels for s in sets]),
                    np.concatenate([s.dims for s in sets]), np.concatenate([s.corpora for s in sets]))


def training_set(feats: ClipFeatures, clips, names: Sequence[str], variants: int = 0) -> FrameSet:
    """The clips' frames, plus `variants` degraded copies of each (ser_tool.representations.degrade: noise,
    a room, a telephone band), each encoded once and kept in the same feature cache."""
    from ser_tool.representations.degrade import DegradedRepresentation

    sets = [feats.frame_set(clips, names)]
    for k in range(1, variants + 1):
        degraded = ClipFeatures(feats.cache, [DegradedRepresentation(feats.reps[n], k) for n in names])
        sets.append(degraded.frame_set(clips, names))
    return sets[0] if len(sets) == 1 else joined(*sets)


def train_voice(corpus_dirs: Sequence, out_dir, backbone: str, cache_dir, cfg: VoiceTrainConfig | None = None,
                log: Log = print, arousal_dirs: Sequence = ()) -> dict:
    """`ser train --backbone REP[+REP]`: frozen features (cached) -> voice head on the train speakers,
    epoch and temperature chosen on dev speakers, test speakers scored; writes the model folder.
    arousal_dirs: corpora with expressed-emotion levels and no categories (`--arousal-corpus`): every clip with a
    level trains the arousal output only (`arousal_set`); they take no part in dev or test."""
    import json
    from pathlib import Path

    from ser_tool.backends.voice_model import save_voice_head
    from ser_tool.data import read_corpus, split_by_speaker
    from ser_tool.errors import ConfigError
    from ser_tool.representations import FeatureCache, load_representation, parse_backbone

    cfg = cfg or VoiceTrainConfig()
    names = parse_backbone(backbone)
    clips = [c for d in corpus_dirs for c in read_corpus(d).clips]
    level_clips = arousal_clips(arousal_dirs)
    split = split_by_speaker(clips)
    if not split["dev"]:
        raise ConfigError("no dev speakers: the corpora need speaker ids (at least 3 speakers in one corpus) for a dev split")
    from ser_tool.representations.degrade import LevelledRepresentation

    base = [load_representation(n) for n in names]
    reps = base if cfg.input_level_db is None else [LevelledRepresentation(r, cfg.input_level_db) for r in base]
    feats = ClipFeatures(FeatureCache(cache_dir), reps)
    log(f"features for {len(clips)} clips ({'+'.join(names)}; cached in {cache_dir})")
    sets = {s: feats.frame_set(split[s], names) for s in ("dev", "test")}
    sets["train"] = training_set(feats, split["train"], names, cfg.degraded_variants)
    if level_clips:
        log(f"arousal-only clips: {len(level_clips)} from {', '.join(sorted({c.corpus for c in level_clips}))}")
        sets["train"] = joined(sets["train"], arousal_set(feats, level_clips, names))
    model, summary = train_voice_heads(sets["train"], sets["dev"], names, cfg, log=log)
    test = {}
    if len(sets["test"]):
        from scipy.special import softmax

        logits, _ = predict_frames(model, sets["test"].frames)
        pred = logits.argmax(axis=1)
        for c in sorted(set(sets["test"].corpora)):
            m = sets["test"].corpora == c
            probs = softmax(logits[m], axis=1)
            test[c] = {"uar": uar(sets["test"].labels[m], pred[m]),
                       "ece": expected_calibration_error(probs, sets["test"].labels[m]),
                       "ece_floor": ece_noise_floor(probs)[1]}  # what sampling alone gives on this many clips
        # every held-out clip together: on a few hundred clips the ECE's sampling floor is several points
        pooled = softmax(logits, axis=1)
        summary["test_ece_pooled"] = expected_calibration_error(pooled, sets["test"].labels)
        summary["test_ece_pooled_floor"] = ece_noise_floor(pooled)[1]
    summary["test"] = test
    summary["representation_ids"] = {r.name: r.id for r in base}
    summary["data"] = [str(Path(d)) for d in corpus_dirs]
    if arousal_dirs:
        summary["arousal_data"] = [str(Path(d)) for d in arousal_dirs]
    save_voice_head(model, out_dir, {"representation_ids": summary["representation_ids"], "input_level_db": cfg.input_level_db})
    (Path(out_dir) / "training.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def arousal_clips(folders: Sequence) -> list:
    """The clips of `folders` that name an expressed-emotion level (ser_tool.data.read_levels). A ConfigError for a
    folder with none (it would train nothing), and for one with emotion categories: there a level is how strongly
    that emotion is played (RAVDESS: an angry clip at normal intensity is not calm), not an arousal."""
    from ser_tool.data import read_levels
    from ser_tool.errors import ConfigError
    from ser_tool.labels import canonical_emotion

    out = []
    for folder in folders:
        clips, _ = read_levels(folder)
        if not clips:
            raise ConfigError(f"{folder}: no clip has an expressed-emotion level (manifest column intensity: low, normal, "
                              "high or strong), so it cannot train arousal; pass a corpus with levels")
        categories = sorted({e for c in clips if (e := canonical_emotion(c.label)) not in (None, "neutral")})
        if categories:
            raise ConfigError(f"{folder} has emotion categories ({', '.join(categories)}): its levels say how strongly each "
                              "is expressed, not an arousal; train on it as a corpus with categories instead")
        out += clips
    return out
