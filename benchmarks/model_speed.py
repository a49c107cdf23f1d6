"""Benchmark: the embedded model's speed on ONE CPU core, feature extraction (STFT + log-mel) included.

Not a test. Pins the process to one core where the OS allows it, sets torch to one thread, and times
the model on 10 s of 16 kHz audio (waveform in, logits and dimensions out).

    python benchmarks/model_speed.py [--model DIR] [--seconds 10] [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=30)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    from ser_tool.backends import load_backend

    torch.set_num_threads(1)  # the model is timed by calling it directly, outside the backend's own thread scope
    backend = load_backend("embedded", model=args.model)
    wave = (np.random.default_rng(0).standard_normal(int(args.seconds * 16000)) * 0.05).astype(np.float32)
    x = torch.from_numpy(wave)[None]
    with torch.inference_mode():
        for _ in range(3):
            backend.model(x)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            backend.model(x)
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    params = sum(p.numel() for p in backend.model.parameters())
    print(f"model {backend.model_id}: {params:,} parameters, torch threads {torch.get_num_threads()}, "
          f"cores {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    print(f"{args.seconds:g} s of audio: median {med * 1000:.1f} ms, best {min(times) * 1000:.1f} ms "
          f"-> {args.seconds / med:.0f}x real time (median), including STFT + log-mel")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
