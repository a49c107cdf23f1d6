"""Frozen features of corpus clips through the disk cache: extract once, reuse in every fold.

`python -m evals.classify.features --cache DIR --reps resemblyzer whisper-base prosody DATA_DIR...`
fills the cache (each clip decoded once for all representations); `load_features` reads it back.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


from ser_tool.audio import load_audio
from ser_tool.errors import AudioError
from ser_tool.representations import FeatureCache, Features, load_representation
from ser_tool.data import Clip, read_corpus
from ser_tool.parts import default_feature_dir


def extract(clips: Sequence[Clip], reps: Sequence, cache: FeatureCache, log=print, every: int = 500) -> list[tuple[str, str]]:
    """Fill the cache for every (clip, representation); returns the clips that could not be decoded."""
    failed, started = [], time.time()
    for i, clip in enumerate(clips, 1):
        missing = [r for r in reps if cache.get(clip.path, r.id) is None]
        if missing:
            try:
                wave = load_audio(clip.path)
            except AudioError as e:
                failed.append((str(clip.path), str(e)))
                continue
            for r in missing:
                cache.put(clip.path, r.id, r.features(wave))
        if i % every == 0 or i == len(clips):
            log(f"{i}/{len(clips)} clips, {time.time() - started:.0f} s")
    return failed


def load_features(clips: Sequence[Clip], rep, cache: FeatureCache) -> list[Features]:
    """Cached features of every clip (computed on a miss)."""
    return [cache.features(c.path, rep) for c in clips]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fill the representation feature cache for corpora in the manifest format.")
    p.add_argument("data", nargs="+", metavar="DATA_DIR")
    p.add_argument("--reps", nargs="+", default=["resemblyzer", "whisper-base", "prosody", "mfcc"],
                   help="representations to cache (mfcc: the classical baseline's statistics)")
    p.add_argument("--cache", default=str(default_feature_dir()), help="default: $XDG_CACHE_HOME/ser-tool/features")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fit-cap", type=int, default=2000, help="extract the clips LOCO fits on first (evals.classify.loco.extraction_order)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from evals.classify.loco import MFCCBaseline

    reps = [MFCCBaseline() if n == "mfcc" else load_representation(n) for n in args.reps]
    cache = FeatureCache(args.cache)
    from evals.classify.loco import extraction_order

    corpora = {c.name: c.clips for c in map(read_corpus, args.data)}
    clips = extraction_order(corpora, args.fit_cap)
    print(f"{len(clips)} clips of {', '.join(corpora)}", flush=True)
    failed = extract(clips, reps, cache, log=lambda s: print(s, flush=True))
    for path, err in failed:
        print(f"  undecodable: {path}: {err}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
