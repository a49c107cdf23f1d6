"""Benchmark: time and peak memory of `ser analyze` on 1, 10 and 60 minutes of audio.

Not a test. Synthesises a conversation-like recording (speech-like bursts of varying pitch and
loudness, pauses, a little noise) as 16 kHz Ogg Opus, written block by block, then analyses each file
in a fresh Python process and reports wall time, real-time factor and that process's peak RSS.

    python benchmarks/long_audio.py                      # embedded model (the default backend)
    python benchmarks/long_audio.py --backend hf --model DIR
    python benchmarks/long_audio.py --tiny-hf            # a tiny random hf model: the pipeline alone

Linear time and flat memory are what to look for: the audio is streamed window by window.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from ser_tool import AnalysisOptions, Analyzer, BackendSpec
spec = BackendSpec(name=sys.argv[2], model=sys.argv[3] or None, offline=True)
analyzer = Analyzer(spec, AnalysisOptions(batch_size=int(sys.argv[4])))
_ = analyzer.backend  # load the model before timing the analysis
t1 = time.perf_counter()
report = analyzer.analyze(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({
    "load_s": t1 - t0, "analyze_s": t2 - t1,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "segments": len(report.timeline or []),
    "speech_s": report.speech_duration,
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
    p.add_argument("--tiny-hf", action="store_true", help="build a tiny random hf model and use it")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        backend, model = args.backend, args.model
        if args.tiny_hf:
            from ser_tool.testing import make_tiny_hf_classifier

            backend, model = "hf", str(make_tiny_hf_classifier(Path(tmp) / "tiny"))
        print(f"backend={backend} model={model or '(default)'} batch_size={args.batch_size}")
        print(f"{'audio':>8} {'analyze s':>10} {'x realtime':>11} {'peak RSS MB':>12} {'segments':>9} {'model load s':>13}")
        for minutes in args.minutes:
            path = Path(tmp) / f"conv_{minutes:g}min.opus"
            synth_conversation(path, minutes)
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), backend, model, str(args.batch_size)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rtf = minutes * 60 / r["analyze_s"]
            print(f"{minutes:>6g} m {r['analyze_s']:>10.1f} {rtf:>10.0f}x {r['peak_rss_mb']:>12.0f} {r['segments']:>9} {r['load_s']:>13.1f}")
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
