"""Calibration of the steady-tone check (ser_tool.segment.steady_tone_share): how often it fires on real
speech (false positives) and whether it fires on tones, chords and hum.

Not a test. Runs the analysis path up to the model - decode, speech detection, window plan, the check -
on a seeded sample of clips from each corpus in the shared data folder (manifest format), with both
speech detectors, and on synthesised non-speech. Prints per corpus the spectral steadiness of the
speech windows (median, 99th percentile, max; the check fires above STEADY_SIMILARITY), the number of
clips it flags and which.

    python benchmarks/steady_tones.py                         # 60 clips per corpus from ../shared/data
    python benchmarks/steady_tones.py --per-corpus 200 --data /path/to/data
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np

from ser_tool.audio import SAMPLE_RATE, open_audio
from ser_tool.errors import SERError
from ser_tool.segment import (
    STEADY_SHARE,
    STEADY_SIMILARITY,
    SegmentationOptions,
    detect_speech,
    plan_segments,
    spectral_steadiness,
    steady_tone_share,
)

SR = SAMPLE_RATE


THRESHOLDS = (0.85, 0.9, 0.93, 0.95)  # what-if counts around the chosen STEADY_SIMILARITY


def check(audio, vad: str, sample_rate: int | None = None) -> tuple[dict[float, bool], list[float]] | None:
    """({threshold: flagged}, steadiness of each speech window) as the Analyzer sees it; None when no speech."""
    opts = SegmentationOptions(vad=vad)
    with open_audio(audio, sample_rate=sample_rate) as src:
        regions, _ = detect_speech(src, opts)
        speech = [s for s in plan_segments(regions, src.duration, opts) if s.speech]
        if not speech:
            return None
        scores = [spectral_steadiness(src.read(int(s.start * SR), int(s.end * SR))) for s in speech]
        flags = {t: steady_tone_share(src, speech, t) > STEADY_SHARE for t in {*THRESHOLDS, STEADY_SIMILARITY}}
        return flags, [x for x in scores if x is not None]


def synthetic() -> dict[str, np.ndarray]:
    t = np.arange(3 * SR) / SR
    rng = np.random.default_rng(0)

    def harmonic(f0: float, n: int) -> np.ndarray:
        return sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n + 1))

    sine = 0.3 * np.sin(2 * np.pi * 440 * t)
    return {
        "sine 440 Hz": sine,
        "sine 150 Hz": 0.3 * np.sin(2 * np.pi * 150 * t),
        "sine 3 kHz": 0.3 * np.sin(2 * np.pi * 3000 * t),
        "3 tones 300+500+1200 Hz": 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (300, 500, 1200)),
        "chord C-E-G (sines)": 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
        "chord C-E-G (8 harmonics each)": 0.05 * sum(harmonic(f, 8) for f in (261.6, 329.6, 392.0)),
        "hum 50 Hz + harmonics": 0.1 * harmonic(50, 10),
        "hum 60 Hz + harmonics": 0.1 * harmonic(60, 6),
        "sine + noise, 20 dB SNR": sine + 0.3 / np.sqrt(2) * 10 ** (-20 / 20) * rng.standard_normal(t.size),
        "sine + noise, 10 dB SNR": sine + 0.3 / np.sqrt(2) * 10 ** (-10 / 20) * rng.standard_normal(t.size),
        "sine with 4 Hz tremolo": sine * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)),
        "beeps 0.4 s on / 0.4 s off": sine * (np.sin(2 * np.pi * t / 0.8) > 0),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    p.add_argument("--per-corpus", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vad", nargs="+", default=["webrtc", "energy"])
    args = p.parse_args()

    print(f"threshold: steadiness >= {STEADY_SIMILARITY} on more than {STEADY_SHARE:.0%} of the speech\n")
    print("synthetic non-speech (should be flagged):")
    for name, x in synthetic().items():
        cells = []
        for vad in args.vad:
            r = check(x.astype(np.float32), vad, sample_rate=SR)
            cells.append(f"{vad}: " + ("no speech found" if r is None else
                                       f"{'FLAGGED' if r[0][STEADY_SIMILARITY] else 'not flagged'} "
                                       f"(steadiness {min(r[1], default=float('nan')):.3f})"))
        print(f"  {name:<32} " + "   ".join(cells))

    data = Path(args.data)
    corpora = sorted(d for d in data.iterdir() if (d / "manifest.csv").is_file()) if data.is_dir() else []
    if not corpora:
        print(f"\nno corpora under {data}; pass --data DIR")
        return 0
    for vad in args.vad:
        print(f"\nreal clips, vad={vad} (should not be flagged):")
        total, flagged_total, flagged_all = 0, dict.fromkeys(THRESHOLDS, 0), []
        for corpus in corpora:
            with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            picked = random.Random(f"{args.seed}-{corpus.name}").sample(rows, min(args.per_corpus, len(rows)))
            scores, flagged, skipped = [], [], 0
            for row in picked:
                try:
                    r = check(corpus / row["path"], vad)
                except SERError:
                    r = None
                if r is None:
                    skipped += 1
                    continue
                scores += r[1]
                for t in THRESHOLDS:
                    flagged_total[t] += r[0][t]
                if r[0][STEADY_SIMILARITY]:
                    flagged.append(row["path"])
            total += len(picked) - skipped
            s = np.array(scores)
            print(f"  {corpus.name:<22} clips {len(picked) - skipped:4d} (no speech {skipped})  windows {len(s):4d}  "
                  f"steadiness median {np.median(s):.3f} p99 {np.percentile(s, 99):.3f} max {s.max():.3f}  "
                  f"flagged {len(flagged)}")
            for path in flagged:
                print(f"      flagged: {path}")
            flagged_all += flagged
        print(f"  total: {len(flagged_all)} of {total} clips flagged at {STEADY_SIMILARITY}; "
              "what if the threshold were " + ", ".join(f"{t}: {n}" for t, n in flagged_total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
