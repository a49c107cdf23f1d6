"""`ser train`: corpora -> speaker-independent splits -> CompactSER trained with the hybrid objective.

Recipe (see the model card for what it produced):
- each epoch: every training clip of every corpus, except that a corpus with more than
  `corpus_cap` training clips contributes a fresh random `corpus_cap` of them (so one large corpus
  does not swamp the others); class weights follow the counts the model sees per epoch;
- random 2-4 s crops, speed perturbation 0.9/1.1 (p 0.5), coloured noise at 5-30 dB SNR (p 0.5),
  MixUp (p 0.5, Beta(0.3, 0.3)) of waveforms, class targets and V/A/D targets;
- AdamW, linear warm-up then cosine decay; the checkpoint with the best dev UAR (mean over corpora)
  is kept. Dev clips are scored whole.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio
from ser_tool.data import Clip, read_corpus, split_by_speaker, vad_target
from ser_tool.errors import AudioError, ConfigError
from ser_tool.labels import EMOTIONS

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 25
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 2.0
    crop_seconds: tuple[float, float] = (2.0, 4.0)
    speed_p: float = 0.5
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    mixup_p: float = 0.5
    mixup_alpha: float = 0.3
    corpus_cap: int = 1000
    label_smoothing: float = 0.1
    ccc_weight: float = 0.5
    seed: int = 0
    threads: int = 0  # 0: torch's default


class ClipStore:
    """All clips decoded once into memory as int16 at 16 kHz (8 h of audio = about 0.9 GB)."""

    def __init__(self, clips: Sequence[Clip], progress=None) -> None:
        self.clips, self.waves, self.failed = [], [], []
        for clip in clips:
            try:
                wave = load_audio(clip.path)
            except AudioError as e:
                self.failed.append((str(clip.path), str(e)))
                continue
            self.clips.append(clip)
            self.waves.append((np.clip(wave, -1, 1) * 32767).astype(np.int16))
            if progress:
                progress(1)
        self.labels = np.array([EMOTIONS.index(c.label) for c in self.clips], dtype=np.int64)
        self.dims = np.array([c.dimensions or vad_target(c.label, c.intensity) for c in self.clips], dtype=np.float32).reshape(-1, 3)
        self.corpora = np.array([c.corpus for c in self.clips], dtype=object)

    def wave(self, i: int) -> np.ndarray:
        return self.waves[i].astype(np.float32) / 32768.0

    def __len__(self) -> int:
        return len(self.clips)


class Augmenter:
    def __init__(self, cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng

    def batch(self, store: ClipStore, idx: np.ndarray, augment: bool = True) -> np.ndarray:
        """Equal-length crops (length drawn per batch, capped by the shortest clip), perturbed."""
        import soxr

        rng, cfg = self.rng, self.cfg
        speeds = [rng.choice([0.9, 1.1]) if augment and rng.random() < cfg.speed_p else 1.0 for _ in idx]
        shortest = min(len(store.waves[i]) / s for i, s in zip(idx, speeds))
        length = max(400, int(min(rng.uniform(*cfg.crop_seconds) * SAMPLE_RATE, shortest)))
        out = np.zeros((len(idx), length), dtype=np.float32)
        for row, (i, speed) in enumerate(zip(idx, speeds)):
            x = store.wave(i)
            need = min(len(x), int(math.ceil(length * speed)) + 8)
            start = int(rng.integers(0, len(x) - need + 1))
            x = x[start: start + need]
            if speed != 1.0:  # played back `speed` times faster: duration and pitch change together
                x = soxr.resample(x, SAMPLE_RATE * speed, SAMPLE_RATE)
            x = x[:length]
            if augment and rng.random() < cfg.noise_p:
                snr = rng.uniform(*cfg.snr_db)
                power = float(np.mean(x**2)) + 1e-8
                x = x + self._coloured_noise(len(x)) * np.sqrt(power / 10 ** (snr / 10))
            out[row, : len(x)] = x
        return out

    def _coloured_noise(self, n: int) -> np.ndarray:
        exponent = self.rng.choice([0.0, 1.0, 2.0])  # white, pink, brown
        spectrum = np.fft.rfft(self.rng.standard_normal(n))
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        x = np.fft.irfft(spectrum / f ** (exponent / 2), n)
        return (x / (x.std() + 1e-8)).astype(np.float32)


def load_corpora(corpus_dirs: Sequence[str | Path]) -> tuple[dict[str, list[Clip]], dict[str, dict[str, int]]]:
    clips, dropped = [], {}
    for folder in corpus_dirs:
        corpus = read_corpus(folder)
        if not corpus.clips:
            raise ConfigError(f"{folder}: no clip has a label that maps onto the 7 emotions")
        clips += corpus.clips
        if corpus.dropped:
            dropped[corpus.name] = dict(corpus.dropped)
    return split_by_speaker(clips), dropped


def evaluate(model, store: ClipStore, loss_fn) -> dict:
    """Whole clips, one at a time. Returns dev loss, UAR per corpus and their mean, CCC per dimension."""
    import torch

    from ser_tool.train.loss import ccc

    model.eval()
    logits, dims = [], []
    with torch.inference_mode():
        for i in range(len(store)):
            lo, d = model(torch.from_numpy(store.wave(i))[None])
            logits.append(lo[0])
            dims.append(d[0])
    model.train()
    logits, dims = torch.stack(logits), torch.stack(dims)
    target = torch.nn.functional.one_hot(torch.from_numpy(store.labels), len(EMOTIONS)).float()
    loss = loss_fn(logits, dims, target, torch.from_numpy(store.dims))
    pred = logits.argmax(dim=1).numpy()
    per_corpus = {c: _uar(store.labels[store.corpora == c], pred[store.corpora == c]) for c in sorted(set(store.corpora))}
    return {
        "loss": float(loss["loss"]), "ce": float(loss["ce"]),
        "uar": per_corpus, "mean_uar": float(np.mean(list(per_corpus.values()))),
        "ccc": dict(zip(("valence", "arousal", "dominance"), ccc(dims, torch.from_numpy(store.dims)).tolist())),
    }


def _uar(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def train(corpus_dirs: Sequence[str | Path], out_dir: str | Path, cfg: TrainConfig | None = None,
          log: Log = print, progress_factory=None) -> dict:
    """Train CompactSER on the corpora's train split, select on dev, write the model folder. Returns the summary."""
    splits, dropped = load_corpora(corpus_dirs)
    return train_splits(splits, out_dir, cfg, log, progress_factory, data=[str(Path(d)) for d in corpus_dirs], labels_dropped=dropped)


def train_splits(splits: Mapping[str, Sequence[Clip]], out_dir: str | Path, cfg: TrainConfig | None = None,
                 log: Log = print, progress_factory=None, *, data: Sequence[str] = (),
                 labels_dropped: Mapping[str, Mapping[str, int]] | None = None) -> dict:
    """Train CompactSER on splits['train'], keep the epoch with the best dev UAR (splits['dev']), write the
    model folder (weights, config.json, training.json) and return the summary. splits['test'], when given,
    is only counted in the summary. `data` and `labels_dropped` describe where the clips came from."""
    import torch

    from ser_tool.train.loss import HybridLoss, class_weights, hybrid_step
    from ser_tool.backends.compact import CompactSER, ModelConfig, save_model

    cfg = cfg or TrainConfig()
    started = time.time()
    if not splits.get("dev"):
        raise ConfigError("no dev speakers: the corpora need speaker ids (at least 3 speakers in one corpus) for a dev split")
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    bar = progress_factory(len(splits["train"]) + len(splits["dev"]), "decoding") if progress_factory else None
    train_store = ClipStore(splits["train"], bar.update if bar else None)
    dev_store = ClipStore(splits["dev"], bar.update if bar else None)
    if bar:
        bar.close()

    by_corpus = {c: np.flatnonzero(train_store.corpora == c) for c in sorted(set(train_store.corpora))}
    per_epoch = {c: min(len(ix), cfg.corpus_cap) for c, ix in by_corpus.items()}
    expected = np.zeros(len(EMOTIONS))
    for c, ix in by_corpus.items():
        expected += np.bincount(train_store.labels[ix], minlength=len(EMOTIONS)) * per_epoch[c] / len(ix)
    weights = class_weights(expected)
    log(f"train clips per epoch: {per_epoch}; class weights: " + ", ".join(f"{e} {w:.2f}" for e, w in zip(EMOTIONS, weights.tolist())))

    model = CompactSER(ModelConfig())
    loss_fn = HybridLoss(weights, cfg.label_smoothing, cfg.ccc_weight)
    steps = sum(per_epoch.values()) // cfg.batch_size
    if steps == 0:
        raise ConfigError(f"only {sum(per_epoch.values())} training clips could be read, fewer than one batch of "
                          f"{cfg.batch_size}; give more labelled clips or a smaller batch size")
    total, warm = steps * cfg.epochs, max(1, int(steps * cfg.warmup_epochs))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    aug = Augmenter(cfg, rng)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history, best, stopped = [], None, None
    for epoch in range(cfg.epochs):
        order = np.concatenate([rng.choice(ix, per_epoch[c], replace=False) for c, ix in by_corpus.items()])
        rng.shuffle(order)
        sums = Counter()
        bar = progress_factory(steps, f"epoch {epoch + 1}/{cfg.epochs}") if progress_factory else None
        try:
            for b in range(steps):
                idx = order[b * cfg.batch_size: (b + 1) * cfg.batch_size]
                x = torch.from_numpy(aug.batch(train_store, idx))
                losses = hybrid_step(model, loss_fn, opt, sched, x, train_store.labels[idx], train_store.dims[idx], rng,
                                     cfg.mixup_p, cfg.mixup_alpha)
                sums.update({k: float(v.detach()) for k, v in losses.items()})
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sums['loss'] / (b + 1):.3f}")
            dev = evaluate(model, dev_store, loss_fn)
        except KeyboardInterrupt:  # Ctrl-C: the epochs that finished are kept (the best one is already saved)
            if best is None:
                raise
            stopped = epoch + 1
            log(f"interrupted in epoch {stopped}: training stops here; the best epoch so far ({best['epoch']}) is kept")
            break
        finally:
            if bar:
                bar.close()
        record = {"epoch": epoch + 1, **{f"train_{k}": v / max(1, steps) for k, v in sums.items()},
                  "dev_loss": dev["loss"], "dev_uar": dev["uar"], "dev_mean_uar": dev["mean_uar"],
                  "dev_ccc": dev["ccc"], "elapsed_s": round(time.time() - started, 1)}
        improved = best is None or dev["mean_uar"] > best["dev_mean_uar"]
        if improved:
            best = record
            save_model(model, out_dir)
        history.append(record)
        log(f"epoch {epoch + 1:2d}  train loss {record['train_loss']:.3f} (ce {record['train_ce']:.3f}, ccc {record['train_ccc']:.3f})  "
            f"dev loss {dev['loss']:.3f}  dev UAR " + " ".join(f"{c}={u:.3f}" for c, u in dev["uar"].items())
            + f"  mean {dev['mean_uar']:.3f}{'  *best' if improved else ''}")
    summary = {
        "config": asdict(cfg),
        "data": list(data),
        "labels_dropped": {k: dict(v) for k, v in (labels_dropped or {}).items()},
        "clips": {s: _counts(st) for s, st in (("train", train_store), ("dev", dev_store))}
        | {"test": _counts_clips(splits.get("test", []))},
        "speakers": {s: len({c.speaker for c in cs if c.speaker}) for s, cs in splits.items()},
        "undecodable": train_store.failed + dev_store.failed,
        "best_epoch": best["epoch"],
        "best": best,
        "interrupted_in_epoch": stopped,  # None: every epoch ran
        "history": history,
        "train_seconds": round(time.time() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _counts(store: ClipStore) -> dict:
    return _counts_clips(store.clips)


def _counts_clips(clips: Sequence[Clip]) -> dict:
    table: dict[str, dict[str, int]] = {}
    for c in clips:
        table.setdefault(c.corpus, Counter())[c.label] += 1
    return {corpus: {e: counts.get(e, 0) for e in EMOTIONS} for corpus, counts in sorted(table.items())}
