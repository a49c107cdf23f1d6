"""Which Whisper-base encoder layers carry emotion? A linear probe per layer. Not a test.

Runs the torch encoder (ser_tool.representations.ct2_whisper, weights from the offline recogniser's
CTranslate2 folder) on every clip of the given corpora, keeps mean+std of each layer's states (layers 0-5,
and the final layer norm = what CTranslate2 returns, printed as L6), then fits standardised, class-balanced
logistic regression (C chosen on dev speakers) per layer and per average of layers:
- within: train speakers of all corpora -> test speakers of each corpus (ser_tool.data.split_by_speaker);
- out:CORPUS (with --left-out): every other corpus (RAVDESS speech + song together) -> every clip of CORPUS.
This chose `whisper-base-mid`'s layers (ser_tool.representations.whisper.MID_LAYERS).

    python benchmarks/whisper_layers.py ../shared/data/emodb_trimmed2s ../shared/data/ravdess ../shared/data/ravdess_song_trimmed \
        --left-out emodb_trimmed2s [--cache runs/whisper-layers]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ser_tool.data import read_corpus, split_by_speaker  # noqa: E402
from ser_tool.labels import EMOTIONS  # noqa: E402

SELECTIONS = {f"L{j}": [j] for j in range(7)} | {"L2-3": [2, 3], "L1-3": [1, 2, 3], "L2-4": [2, 3, 4], "L3-5": [3, 4, 5], "L1-6": [1, 2, 3, 4, 5, 6]}


def layer_stats(clips, cache: Path) -> dict:
    """{path: (7, 2 d) mean+std per layer}, cached per corpus in `cache`."""
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor

    from ser_tool.audio import load_audio
    from ser_tool.representations.ct2_whisper import build_encoder, read_ct2_variables
    from ser_tool.representations.whisper import whisper_base_dir

    out = {}
    encoder = extractor = None
    for corpus in sorted({c.corpus for c in clips}):
        file = cache / f"{corpus}.npz"
        mine = [c for c in clips if c.corpus == corpus]
        if file.is_file():
            z = np.load(file)
            out.update(dict(zip(z["paths"], z["x"])))
            if all(str(c.path) in out for c in mine):
                continue
        if encoder is None:
            encoder = build_encoder(read_ct2_variables(whisper_base_dir() / "model.bin"))
            extractor = FeatureExtractor(feature_size=encoder.n_mels)
        x = np.zeros((len(mine), encoder.num_layers + 1, 2 * encoder.dim), dtype=np.float32)
        started = time.time()
        for i, c in enumerate(mine):
            mel = extractor(load_audio(c.path)[: 30 * 16_000], padding=0)
            mel = mel[:, : mel.shape[1] // 2 * 2]
            with torch.inference_mode():
                states, last = encoder(torch.from_numpy(np.ascontiguousarray(mel[None], dtype=np.float32)))
            for j, h in enumerate([*states, last]):
                h = h[0].numpy()
                x[i, j] = np.concatenate([h.mean(axis=0), h.std(axis=0)])
            if i % 200 == 0:
                print(f"  {corpus}: {i}/{len(mine)} clips, {time.time() - started:.0f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(file, x=x, paths=np.array([str(c.path) for c in mine]))
        out.update({str(c.path): v for c, v in zip(mine, x)})
    return out


def probe(stats, fit, dev, score, layers) -> tuple[float, dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def matrix(cs):
        return np.stack([stats[str(c.path)][layers].mean(axis=0) for c in cs])

    def labels(cs):
        return np.array([EMOTIONS.index(c.label) for c in cs])

    def uar(y, p):
        return float(np.mean([np.mean(p[y == k] == k) for k in np.unique(y)]))

    scaler = StandardScaler().fit(matrix(fit))
    x, xd, xs = (scaler.transform(matrix(cs)) for cs in (fit, dev, score))
    best = None
    for c in (0.01, 0.1, 1.0):
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=500, tol=1e-3).fit(x, labels(fit))
        d = uar(labels(dev), m.predict(xd))
        if best is None or d > best[0]:
            best = (d, m)
    y, p = labels(score), best[1].predict(xs)
    return uar(y, p), {EMOTIONS[k][:4]: round(float(np.mean(p[y == k] == k)), 2) for k in np.unique(y)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", metavar="CORPUS_DIR")
    p.add_argument("--left-out", metavar="CORPUS", help="also fit on the other corpora and score every clip of this one")
    p.add_argument("--cache", default="runs/whisper-layers", help="per-corpus layer statistics are kept here")
    args = p.parse_args()
    clips = [c for d in args.data for c in read_corpus(d).clips]
    stats = layer_stats(clips, Path(args.cache))
    split = split_by_speaker(clips)
    corpora = sorted({c.corpus for c in clips})
    print("UAR of a linear probe per layer (L6 = the final layer norm, what CTranslate2 returns)")
    for name, layers in SELECTIONS.items():
        row = [f"within {name:6s}"]
        for corpus in corpora:
            test = [c for c in split["test"] if c.corpus == corpus]
            if test:
                row.append(f"{corpus[:10]} {probe(stats, split['train'], split['dev'], test, layers)[0]:.3f}")
        if args.left_out:
            group = {args.left_out} | ({"ravdess", "ravdess_song_trimmed"} if args.left_out.startswith("ravdess") else set())
            rest = split_by_speaker([c for c in clips if c.corpus not in group])
            u, recall = probe(stats, rest["train"] + rest["test"], rest["dev"], [c for c in clips if c.corpus == args.left_out], layers)
            row.append(f"out:{args.left_out} {u:.3f} {recall}")
        print("  ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
