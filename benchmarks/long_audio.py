"""Benchmark: time and peak memory of `ser analyze` on 1, 10 and 60 minutes of audio.

Not a test. Synthesises a conversation-like recording (speech-like bursts of varying pitch and
loudness, pauses, a little noise) as 16 kHz Ogg Opus, written block by block, then analyses each file
in a fresh Python process pinned to one CPU core (`--all-cores`: not pinned) and reports wall time, x real
time, the RSS once the model is loaded, and the peak RSS while analysing, over that load.

    python benchmarks/long_audio.py                      # the compact (embedded) model; --backend voice: the default model
    python benchmarks/long_audio.py --backend voice --backbone whisper-base-mid   # a random voice head
    python benchmarks/long_audio.py --backend voice --model DIR                   # a trained voice head
    python benchmarks/long_audio.py --backend voice --model DIR --precision float32   # its encoder in float32
    python benchmarks/long_audio.py --backend hf --model DIR
    python benchmarks/long_audio.py --tiny-hf            # a tiny random hf model: the pipeline alone

`--backbone REP[+REP]` builds a randomly initialised voice head for that backbone
(ser_tool.testing.make_random_voice_head) and loads it through the real voice backend: speed and memory do
not depend on the head's weights. Linear time and flat memory are what to look for: the audio is streamed
window by window (a file up to 10 min is decoded once and kept, at most 38 MB, so 10 min shows that much more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_tool.representations.base import PRECISIONS

SR = 16_000

_CHILD = r"""
import json, os, resource, sys, time
if sys.argv[5] == "1" and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
def status_mb(field):
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) / 1024 for l in f if l.startswith(field + ":"))
    except (OSError, StopIteration):
        return None
t0 = time.perf_counter()
from ser_tool import AnalysisOptions, Analyzer, BackendSpec
spec = BackendSpec(name=sys.argv[2], model=sys.argv[3] or None, offline=True, precision=sys.argv[6])
analyzer = Analyzer(spec, AnalysisOptions(batch_size=int(sys.argv[4])))
_ = analyzer.backend  # load the model before timing the analysis
t1 = time.perf_counter()
load_rss = status_mb("VmRSS")
try:  # reset the peak (Linux >= 4.0), so the peak below is the analysis's, not the loading's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
report = analyzer.analyze(sys.argv[1])
t2 = time.perf_counter()
peak = status_mb("VmHWM") if reset else None
print(json.dumps({
    "load_s": t1 - t0, "analyze_s": t2 - t1, "load_rss_mb": load_rss,
    "peak_rss_mb": peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_is_analysis": peak is not None,
    "segments": len(report.timeline or []),
    "speech_s": report.speech_duration,
    "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
}))
"""


def synth_conversation(path: Path, minutes: float, seed: int = 0) -> None:
    """Write `minutes` of speech-like audio with pauses, one 10-s block at a time."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SR)
    written = 0
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, format="OGG", subtype="OPUS") as f:
        while written < total:
            n = min(10 * SR, total - written)
            t = np.arange(n) / SR
            f0 = rng.uniform(100, 250)
            phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))) / SR
            voiced = sum(np.sin(k * phase) / k for k in range(1, 16))
            env = (0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 5) * t))) ** 1.5
            pause = t > rng.uniform(6, 9.5)  # each 10-s block ends in a pause
            block = rng.uniform(0.05, 0.4) * voiced / np.abs(voiced).max() * env * ~pause
            block += 0.002 * rng.standard_normal(n)
            f.write(block.astype(np.float32))
            written += n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--backend", default="embedded")
    p.add_argument("--model", default="")
    p.add_argument("--backbone", default="", metavar="REP[+REP]",
                   help="--backend voice without --model: a randomly initialised voice head for this backbone")
    p.add_argument("--tiny-hf", action="store_true", help="build a tiny random hf model and use it")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="--backend voice: its Whisper encoder's precision (default auto, as the backend)")
    p.add_argument("--all-cores", action="store_true", help="do not pin the analysing process to one CPU core")
    args = p.parse_args()
    if args.backbone and (args.backend != "voice" or args.model):
        p.error("--backbone builds a random head for --backend voice; it cannot go with another backend or --model")

    with tempfile.TemporaryDirectory() as tmp:
        backend, model = args.backend, args.model
        note = ""
        if args.tiny_hf:
            from ser_tool.testing import make_tiny_hf_classifier

            backend, model = "hf", str(make_tiny_hf_classifier(Path(tmp) / "tiny"))
        elif args.backbone:
            from ser_tool.errors import SERError
            from ser_tool.testing import make_random_voice_head

            try:
                model = str(make_random_voice_head(Path(tmp) / "voice", args.backbone))
            except SERError as e:
                print(f"cannot build a voice head for {args.backbone}: {e}", file=sys.stderr)
                return 1
            note = (f" (a randomly initialised head for {args.backbone}, loaded through the voice backend; "
                    "speed and memory do not depend on its weights)")
        print(f"backend={backend} model={model or '(default)'}{note} batch_size={args.batch_size} precision={args.precision}")
        print(f"load average (1/5/15 min) at start: {load_average()}")
        print(f"{'audio':>8} {'analyze s':>10} {'x realtime':>11} {'load RSS MB':>12} {'peak RSS MB':>12} "
              f"{'over load MB':>13} {'segments':>9} {'model load s':>13}")
        for minutes in args.minutes:
            path = Path(tmp) / f"conv_{minutes:g}min.opus"
            synth_conversation(path, minutes)
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), backend, model, str(args.batch_size), "0" if args.all_cores else "1",
                 args.precision],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rtf = minutes * 60 / r["analyze_s"]
            over = r["peak_rss_mb"] - r["load_rss_mb"] if r["load_rss_mb"] is not None else float("nan")
            print(f"{minutes:>6g} m {r['analyze_s']:>10.1f} {rtf:>10.0f}x {r['load_rss_mb'] or float('nan'):>12.0f} "
                  f"{r['peak_rss_mb']:>12.0f} {over:>13.0f} {r['segments']:>9} {r['load_s']:>13.1f}")
            path.unlink()
        print(f"analysing process on {r['cores']} core(s); peak RSS {'while analysing' if r['peak_is_analysis'] else 'of the whole process (the peak could not be reset)'}; "
              f"load average at end: {load_average()}")
    return 0


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
