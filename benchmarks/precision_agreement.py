"""Benchmark: the voice model in float32 and in bfloat16 on the same clips - how far apart, and how fast.

Not a test. Loads the voice backend twice (`BackendSpec("voice", precision=...)`: the shipped model, or
--model DIR) and scores the held-out speakers of the given corpora (the same speaker split as `ser-eval ser`)
through both, each clip at the backend's speech level as the analyzer hands it. Prints, per corpus and over
all clips: UAR in each precision, how often the top emotion agrees, the largest and the mean absolute
difference of a probability and of valence / arousal / dominance, and the seconds each precision took
(interleaved batch by batch, on one thread, so a change in the machine's load hits both alike).

    python benchmarks/precision_agreement.py ../shared/data/ravdess ../shared/data/emodb_trimmed2s
    python benchmarks/precision_agreement.py ../shared/data/emospeech --split all --limit 300

bfloat16 is what `--precision auto` picks on a CPU that multiplies it natively (AVX-512 BF16, AMX);
elsewhere it is emulated, and slower than float32 - this script then shows that too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpora", nargs="+", help="corpus folders (manifest.csv + audio)")
    p.add_argument("--model", default=None, help="a voice model folder (default: the shipped one)")
    p.add_argument("--split", default="test", choices=("test", "dev", "train", "all"))
    p.add_argument("--limit", type=int, default=None, help="at most this many clips")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()

    import torch

    from evals.classify.benchmark import model_inputs, select_clips
    from evals.classify.metrics import classification_metrics
    from ser_tool.audio import load_audio
    from ser_tool.backends import BackendSpec, load_backend
    from ser_tool.errors import AudioError, SERError
    from ser_tool.labels import EMOTIONS

    torch.set_num_threads(1)
    try:
        backends = {pr: load_backend(BackendSpec("voice", model=args.model, precision=pr, threads=1))
                    for pr in ("float32", "bfloat16")}
        clips, _ = select_clips(args.corpora, args.split, args.limit)
    except SERError as e:
        print(f"cannot run: {e}", file=sys.stderr)
        return 1
    print(f"voice model {backends['float32'].model_id}; {len(clips)} {args.split} clips; torch threads 1; "
          f"CPU: AVX-512 BF16 {torch.cpu._is_avx512_bf16_supported()}, AMX {torch.cpu._is_amx_tile_supported()}")
    probs, dims, seconds, kept = defaultdict(list), defaultdict(list), defaultdict(float), []
    for i in range(0, len(clips), args.batch_size):
        batch, waves = [], []
        for clip in clips[i: i + args.batch_size]:
            try:
                waves.append(load_audio(clip.path))
                batch.append(clip)
            except AudioError:
                continue
        if not waves:
            continue
        kept += batch
        inputs = model_inputs(backends["float32"], waves, True)  # the same speech level for both: one model's
        for pr, backend in backends.items():  # interleaved: both precisions see the same load
            t = time.perf_counter()
            pred = backend.predict(inputs)
            seconds[pr] += time.perf_counter() - t
            probs[pr].append(pred.probabilities)
            dims[pr].append(pred.dimensions)
    if not kept:
        print("no clip could be decoded", file=sys.stderr)
        return 1
    P = {pr: np.concatenate(v) for pr, v in probs.items()}
    D = {pr: np.concatenate(v) for pr, v in dims.items()}
    truth = np.array([EMOTIONS.index(c.label) for c in kept])
    groups = {"all clips": np.ones(len(kept), bool)} | {
        f"corpus {name}": np.array([c.corpus == name for c in kept]) for name in sorted({c.corpus for c in kept})}
    print(f"{'':<28} {'n':>5} {'UAR fp32':>9} {'UAR bf16':>9} {'same top':>9} {'max |dp|':>9} {'mean |dp|':>10} "
          f"{'max |dVAD|':>11} {'mean |dVAD|':>12}")
    for name, m in groups.items():
        a, b = P["float32"][m], P["bfloat16"][m]
        dp, dv = np.abs(a - b), np.abs(D["float32"][m] - D["bfloat16"][m])
        uar = [classification_metrics(truth[m], x.argmax(1), EMOTIONS)["uar"] for x in (a, b)]
        print(f"{name:<28} {int(m.sum()):>5} {uar[0]:>9.3f} {uar[1]:>9.3f} {np.mean(a.argmax(1) == b.argmax(1)):>9.3f} "
              f"{dp.max():>9.3f} {dp.mean():>10.4f} {dv.max():>11.3f} {dv.mean():>12.4f}")
    print(f"model time (predict, clips at the speech level, {len(kept)} clips): float32 {seconds['float32']:.1f} s, "
          f"bfloat16 {seconds['bfloat16']:.1f} s ({seconds['float32'] / seconds['bfloat16']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
