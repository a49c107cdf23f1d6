"""Benchmark: does the reading survive quiet recordings and volume changes?

Not a test. Needs the corpora in ../shared/data (the RAVDESS folder at least).

1. Refusals: every clip of the RAVDESS test split (speakers 19-24, 360 clips, ser_tool.data's split) is
   analysed; a clip is refused when the analysis finds no speech. Counted with the adaptive speech floor
   (the default) and with the fixed -50 dBFS floor ser-tool used before (`vad_floor_db=-50`).
2. Gain invariance: ~20 test-split clips of the four training corpora, each analysed at -12, -6, 0 and
   +6 dB as float samples (nothing clipped: the same signal at four volumes), with loudness normalisation
   (the default) and without it (the audio as recorded). Prints the top emotion at each gain and the
   largest change of any emotion's probability across the gains. Then the same with the samples clipped
   to full scale, as a file written 6 dB hotter would be: on clips that clip, +6 dB is another (distorted)
   signal, which no level normalisation can undo, so it is counted apart.

3. With --all-clips: the gain test over every test-split clip of the four corpora (float samples, with loudness
   normalisation), counts only: same top emotion at every gain, refused at every gain, and the clips that change.

    python benchmarks/level_robustness.py [--data ../shared/data] [--backend embedded] [--model DIR] [--all-clips]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

GAINS_DB = (-12.0, -6.0, 0.0, 6.0)
CORPORA = ("ravdess", "ravdess_song_trimmed", "emodb_trimmed2s", "emospeech")
# The quiet clip of the issue that started this (refused before the floor followed the recording).
QUIET_CLIP = "03-01-04-01-02-01-20.opus"


def refusals(analyzer, clips) -> tuple[int, list[str]]:
    from ser_tool import NoSpeechError

    refused = []
    for clip in clips:
        try:
            analyzer.analyze(clip.path)
        except NoSpeechError:
            refused.append(clip.path.name)
    return len(refused), refused


def gain_clips(data: Path, per_corpus: dict[str, int]) -> list:
    """A fixed, varied set of test-split clips: per corpus, one per emotion in turn, then the quiet clip."""
    from ser_tool.data import read_corpus, split_by_speaker

    chosen = []
    for name, n in per_corpus.items():
        folder = data / name
        if not (folder / "manifest.csv").is_file():
            continue
        test = split_by_speaker(read_corpus(folder).clips)["test"]
        rng = np.random.default_rng(0)
        by_label: dict[str, list] = {}
        for c in (test[i] for i in rng.permutation(len(test))):
            by_label.setdefault(c.label, []).append(c)
        picked: list = []
        while len(picked) < n and any(by_label.values()):
            for label in sorted(by_label):
                if by_label[label] and len(picked) < n:
                    picked.append(by_label[label].pop())
        chosen += picked
    quiet = data / "ravdess" / "audio" / QUIET_CLIP
    if quiet.is_file() and all(c.path != quiet for c in chosen):
        from ser_tool.data import Clip

        chosen.append(Clip(path=quiet, corpus="ravdess", label="sad"))
    return chosen


def gain_table(analyzer, clips, clip_to_full_scale: bool = False) -> tuple[list[dict], str]:
    from ser_tool import EMOTIONS, NoSpeechError
    from ser_tool.audio import SAMPLE_RATE, load_audio

    rows, lines = [], []
    for clip in clips:
        wave = load_audio(clip.path)
        tops, probs, clipped = [], [], False
        for g in GAINS_DB:
            x = wave * np.float32(10 ** (g / 20))
            clipped |= bool(np.any(np.abs(x) > 1.0))
            try:
                overall = analyzer.analyze(np.clip(x, -1.0, 1.0) if clip_to_full_scale else x, sample_rate=SAMPLE_RATE).overall
            except NoSpeechError:
                tops.append("(refused)")
                probs.append(np.full(len(EMOTIONS), np.nan))
                continue
            tops.append(overall.emotion)
            probs.append(np.array(overall.probabilities.as_tuple()))
        p = np.array(probs)
        spread = float(np.nanmax(np.nanmax(p, axis=0) - np.nanmin(p, axis=0))) if np.isfinite(p).any() else float("nan")
        same = len(set(tops)) == 1 and "(refused)" not in tops
        rows.append({"clip": clip.path.name, "label": clip.label, "tops": tops, "spread": spread, "same": same, "clipped": clipped})
        at = "  ".join(f"{t} {pr.max():.2f}" if t != "(refused)" else t for t, pr in zip(tops, probs))
        note = (" (clipped at +6 dB)" if clip_to_full_scale else " (passes full scale at +6 dB)") if clipped else ""
        lines.append(f"  {clip.corpus[:8]:8s} {clip.path.name[:28]:28s} {clip.label:9s} | {at} | max change {spread:.3f}{note}")
    return rows, "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    p.add_argument("--backend", default="embedded", choices=("embedded", "meralion", "hf"))
    p.add_argument("--model", default=None)
    p.add_argument("--skip-refusals", action="store_true", help="only the gain table")
    p.add_argument("--all-clips", action="store_true", help="also the gain test on every test-split clip (counts; minutes)")
    args = p.parse_args()
    data = Path(args.data)
    if not (data / "ravdess" / "manifest.csv").is_file():
        print(f"no corpora in {data} (expected {data / 'ravdess' / 'manifest.csv'}); pass --data", file=sys.stderr)
        return 2

    from ser_tool import AnalysisOptions, Analyzer, BackendSpec, SegmentationOptions
    from ser_tool.data import read_corpus, split_by_speaker

    spec = BackendSpec(args.backend, args.model, offline=True)
    analyzer = Analyzer(spec)
    backend = analyzer.backend
    raw = Analyzer(backend, AnalysisOptions(normalise_loudness=False))

    if not args.skip_refusals:
        test = split_by_speaker(read_corpus(data / "ravdess").clips)["test"]
        speakers = sorted({c.speaker for c in test})
        t0 = time.perf_counter()
        n_new, refused_new = refusals(analyzer, test)
        fixed = Analyzer(backend, AnalysisOptions(segmentation=SegmentationOptions(vad_floor_db=-50.0)))
        n_old, _ = refusals(fixed, test)
        print(f"RAVDESS test split ({len(test)} clips, speakers {speakers[0]}..{speakers[-1]}): refused (no speech detected)")
        print(f"  adaptive speech floor (default):     {n_new} of {len(test)}" + (f"  {refused_new}" if refused_new else ""))
        print(f"  fixed -50 dBFS floor (before):       {n_old} of {len(test)}   ({time.perf_counter() - t0:.0f} s)")

    clips = gain_clips(data, {"ravdess": 8, "ravdess_song_trimmed": 4, "emodb_trimmed2s": 4, "emospeech": 4})
    print(f"\nGain invariance, {backend.name} ({backend.model_id}), {len(clips)} test-split clips; "
          f"top emotion and its probability at {', '.join(f'{g:+g}' for g in GAINS_DB)} dB (float samples, nothing clipped):")
    for title, an in (("with loudness normalisation (default)", analyzer), ("as recorded (normalise_loudness=False)", raw)):
        rows, text = gain_table(an, clips)
        same = sum(r["same"] for r in rows)
        spreads = np.array([r["spread"] for r in rows])
        print(f"\n{title}: same top emotion at every gain for {same} of {len(rows)} clips; largest probability "
              f"change per clip: median {np.nanmedian(spreads):.3f}, max {np.nanmax(spreads):.3f}")
        print(text)
    if args.all_clips:
        every = [c for name in CORPORA if (data / name / "manifest.csv").is_file()
                 for c in split_by_speaker(read_corpus(data / name).clips)["test"]]
        rows, text = gain_table(analyzer, every)
        refused = [r for r in rows if set(r["tops"]) == {"(refused)"}]
        moved = [(r, line) for r, line in zip(rows, text.splitlines()) if not r["same"] and r not in refused]
        print(f"\nevery test-split clip ({len(every)}), float samples, with loudness normalisation: same top emotion at "
              f"every gain for {sum(r['same'] for r in rows)}; refused at every gain {len(refused)}; changes {len(moved)}")
        print("\n".join(line for _, line in moved))
    rows, text = gain_table(analyzer, clips, clip_to_full_scale=True)
    hot = [r for r in rows if r["clipped"]]
    print(f"\nclipped to full scale, as a file 6 dB hotter would be (with loudness normalisation): same top emotion at "
          f"every gain for {sum(r['same'] for r in rows)} of {len(rows)} clips; {len(hot)} clip at +6 dB, of which "
          f"{sum(r['same'] for r in hot)} keep their top emotion")
    print("\n".join(line for line, r in zip(text.splitlines(), rows) if r["clipped"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
