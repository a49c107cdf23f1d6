"""Benchmark: the compact model and voice backbones side by side on ONE CPU core, features included.

Not a test. Pins the process to one core where the OS allows it (the idlest at the start, or --core N; before
numpy and torch load, so their thread pools see one CPU; --all-cores: not pinned) and sets torch to one thread, then times
each model through its backend's `predict` (a 16 kHz waveform in, probabilities and valence/arousal/dominance
out: the compact model's STFT + log-mel and the voice backend's frozen representations included) on 3 s and
10 s of a synthetic voice. The runs are interleaved (each round times every model once), so a change in the
machine's load hits all of them alike; each row's ratio is against the compact model in the same run.
The voice heads are randomly initialised (ser_tool.testing.make_random_voice_head) and loaded through the
real voice backend, load_backend(BackendSpec("voice", model=folder)): speed does not depend on the head's
weights. Each voice row also splits its time into the representations' and the head's.

    python benchmarks/model_speed.py                      # compact vs voice whisper-base-mid, 3 s and 10 s
    python benchmarks/model_speed.py --backbones whisper-base-mid whisper-base-mid+prosody resemblyzer+prosody
    python benchmarks/model_speed.py --voice-model DIR    # also a trained voice head (a `ser train --backbone` folder)
    python benchmarks/model_speed.py --backbones hf-whisper:FOLDER   # a Whisper checkpoint of yours (any size)
    python benchmarks/model_speed.py --precisions float32 bfloat16   # each voice row in both encoder precisions
    python benchmarks/model_speed.py --process 10         # whole `ser analyze` processes on a 3-s clip instead

--process N runs the `ser` command N times per model on the first 3 s of ser_tool/samples/speech_en.ogg,
alternating compact and voice (the voice model: --voice-model, else a random head for the first backbone), and
prints the medians and their ratio: the whole process (Python start, imports, model load, decoding, analysis).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# numpy is imported after the process is pinned (main): OpenBLAS sizes its thread pool on the CPUs it sees
# at import, and two BLAS threads on one core wait on each other (a whisper-base-mid 3-s row took twice as long)
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "ser_tool" / "samples" / "speech_en.ogg"
SR = 16_000


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def idlest_core(cores: set[int], seconds: float = 0.5) -> int:
    """The CPU among `cores` that was idle the most over `seconds` (Linux /proc/stat); the first one elsewhere.
    On a shared machine the other work sits on some cores more than others, and a pinned benchmark that shares
    its core with a busy process measures the time slices it gets, not the model."""
    def idle() -> dict[int, int]:
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit():
                    out[int(name[3:])] = int(fields[3]) + int(fields[4])  # idle + iowait, in clock ticks
        return out

    try:
        before = idle()
        time.sleep(seconds)
        after = idle()
        return max(sorted(cores), key=lambda c: after.get(c, 0) - before.get(c, 0))
    except (OSError, ValueError, IndexError):
        return min(cores)


def pin_one_core(core: int | None = None, pin: bool = True) -> str:
    """Pin this process (and the processes it starts) to one CPU (default: the idlest one); say which."""
    if not pin:
        return f"not pinned: --all-cores, {os.cpu_count()} CPUs"
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (this OS cannot)"
    allowed = os.sched_getaffinity(0)
    if core is not None and core not in allowed:
        raise SystemExit(f"--core {core} is not one of this process's CPUs {sorted(allowed)}")
    chosen = core if core is not None else idlest_core(allowed)
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen}" + ("" if core is not None else f", the idlest of {sorted(allowed)} over 0.5 s")


def voice_models(tmp: Path, backbones: list[str], trained: str | None) -> list[tuple[str, str]]:
    """(label, folder) per voice model to time: a random head per backbone, skipping (with a printed reason)
    a backbone whose representation cannot load, then the trained folder if one is given."""
    from ser_tool.errors import SERError
    from ser_tool.testing import make_random_voice_head

    out = []
    for backbone in backbones:
        try:
            folder = make_random_voice_head(tmp / re.sub(r"[^A-Za-z0-9_.-]", "_", backbone), backbone)
        except SERError as e:
            print(f"skipped voice {backbone}: {e}")
            continue
        out.append((f"voice {backbone}", str(folder)))
    if trained:
        out.append((f"voice {Path(trained).name} (trained)", trained))
    return out


def time_models(args: argparse.Namespace) -> int:
    where = pin_one_core(args.core, not args.all_cores)  # before numpy and torch are imported: their thread pools size themselves on the CPUs they see
    import torch

    from ser_tool.backends import BackendSpec, load_backend
    from ser_tool.errors import SERError
    from ser_tool.testing import voice

    torch.set_num_threads(1)
    print(f"{'all cores' if args.all_cores else 'one core'} ({where}), torch threads {torch.get_num_threads()}; load average (1/5/15 min) at start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="ser-model-speed-") as tmp:
        models = []  # (label, backend, load seconds)
        t = time.perf_counter()
        compact = load_backend(BackendSpec("embedded", model=args.model))
        models.append(("compact (embedded)", compact, time.perf_counter() - t))
        for label, folder in voice_models(Path(tmp), args.backbones, args.voice_model):
            for precision in args.precisions:
                t = time.perf_counter()
                try:
                    backend = load_backend(BackendSpec("voice", model=folder, precision=precision))
                except SERError as e:
                    print(f"skipped {label}: {e}")
                    break
                used = sorted({r.precision for r in backend.representations if hasattr(r, "precision")})
                models.append((label + (f" {'+'.join(used)}" if used else ""), backend, time.perf_counter() - t))
        if args.backbones:
            print("voice heads: randomly initialised (ser_tool.testing.make_random_voice_head), loaded through "
                  "load_backend(BackendSpec('voice', model=folder)); speed does not depend on the head's weights")
        for label, backend, load_s in models:
            net = backend.model if hasattr(backend, "model") else backend.head
            print(f"  {label}: loaded in {load_s:.2f} s, {sum(p.numel() for p in net.parameters()):,} parameters "
                  f"(the {'model' if net is compact.model else 'head'}), model {backend.model_id}")

        header = (f"{'input':>6}  {'model':<44} {'median ms':>10} {'best ms':>8} {'x real time':>12} {'/compact':>9}"
                  f"  {'representations ms':>18} {'head ms':>8}  per representation")
        print()
        print(header)
        print("-" * len(header))
        for seconds in args.seconds:
            wave = voice(seconds, f0=160.0)
            rows = measure(models, wave, args.runs)
            base = statistics.median(rows[0]["total"])
            for (label, backend, _), r in zip(models, rows):
                med = statistics.median(r["total"])
                line = (f"{seconds:>5g}s  {label:<44} {med * 1000:>10.1f} {min(r['total']) * 1000:>8.1f} "
                        f"{seconds / med:>11.0f}x {med / base:>8.2f}x")
                if "head" in r:
                    reps = {name: statistics.median(v) for name, v in r["reps"].items()}
                    line += (f"  {sum(reps.values()) * 1000:>18.1f} {statistics.median(r['head']) * 1000:>8.1f}  "
                             + ", ".join(f"{n} {v * 1000:.1f}" for n, v in reps.items()))
                print(line)
    print(f"median and best of {args.runs} interleaved runs after 3 warm-up runs; load average at end: {load_average()}")
    return 0


def measure(models, wave, runs: int) -> list[dict]:
    """Per model: predict() times, and for a voice backend each representation's and the head's times."""
    import numpy as np
    import torch

    rows = [{"total": []} | ({"reps": {r.name: [] for r in b.representations}, "head": []} if hasattr(b, "head") else {})
            for _, b, _ in models]
    for i in range(3 + runs):
        for (_, backend, _), row in zip(models, rows):
            t = time.perf_counter()
            backend.predict([wave])
            elapsed = time.perf_counter() - t
            if i < 3:
                continue
            row["total"].append(elapsed)
            if "head" in row:
                parts = []
                for rep in backend.representations:
                    t = time.perf_counter()
                    parts.append(rep.frames(wave) if hasattr(rep, "frames") else rep.features(wave).frames)
                    row["reps"][rep.name].append(time.perf_counter() - t)
                n = min(len(p) for p in parts)
                frames = torch.from_numpy(np.concatenate([p[:n] for p in parts], axis=1))[None]
                with torch.inference_mode():
                    t = time.perf_counter()
                    backend.head(frames)
                    row["head"].append(time.perf_counter() - t)
    return rows


def time_processes(args: argparse.Namespace) -> int:
    """Whole `ser analyze` processes on a 3-s clip: compact vs voice, alternating, medians and their ratio."""
    import soundfile as sf

    from ser_tool.audio import load_audio

    where = pin_one_core(args.core, not args.all_cores)
    print(f"{'all cores' if args.all_cores else 'one core'} ({where}; the `ser` processes inherit it); load average (1/5/15 min) at start: {load_average()}")
    ser = Path(sys.executable).parent / "ser"
    base_cmd = [str(ser)] if ser.is_file() else [sys.executable, "-m", "ser_tool.cli"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="ser-process-speed-") as tmp:
        tmp = Path(tmp)
        clip = tmp / "speech_en_3s.ogg"
        sf.write(clip, load_audio(str(SAMPLE))[: 3 * SR], SR, format="OGG", subtype="OPUS")
        models = voice_models(tmp, args.backbones[:1], args.voice_model)
        if not models:
            print("no voice model to compare with (see above)")
            return 1
        label, folder = models[-1] if args.voice_model else models[0]
        cases = [("compact (embedded)", [*base_cmd, "analyze", str(clip), "--backend", "embedded",
                                         *(["--model", args.model] if args.model else [])]),
                 (label, [*base_cmd, "analyze", str(clip), "--backend", "voice", "--model", folder])]
        if not args.voice_model:
            print("voice head: randomly initialised (ser_tool.testing.make_random_voice_head); speed does not depend on its weights")
        times: dict[str, list[float]] = {name: [] for name, _ in cases}
        for i in range(1 + args.process):  # the first round warms the file cache and is not counted
            for name, cmd in cases:
                t = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - t
                if proc.returncode != 0:
                    print(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stderr.strip()}", file=sys.stderr)
                    return 1
                if i:
                    times[name].append(elapsed)
    print(f"\n`ser analyze` on a 3-s clip (the first 3 s of {SAMPLE.name}), {args.process} runs each, alternating:")
    base = statistics.median(times[cases[0][0]])
    for name, _ in cases:
        med = statistics.median(times[name])
        print(f"  {name:<34} median {med:6.2f} s  best {min(times[name]):6.2f} s  {med / base:5.2f}x compact")
    print(f"load average at end: {load_average()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="compact model folder (default: the shipped model)")
    p.add_argument("--backbones", nargs="*", default=["whisper-base-mid"], metavar="REP[+REP]",
                   help="voice backbones to time with a random head (default: whisper-base-mid); none: only --voice-model")
    p.add_argument("--voice-model", default=None, metavar="DIR", help="also time this trained voice model folder")
    p.add_argument("--precisions", nargs="+", choices=("auto", "float32", "bfloat16"), default=["auto"],  # = PRECISIONS (a test
                   # checks): not imported, as ser_tool loads numpy, which must load after the pinning
                   help="the voice backends' encoder precisions, one row each (default: auto, as the backend)")
    p.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0], help="input lengths (default 3 10)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per model and length (default 30)")
    p.add_argument("--core", type=int, default=None, help="pin to this CPU (default: the idlest one at the start)")
    p.add_argument("--all-cores", action="store_true",
                   help="do not pin (as a user's process runs; numpy's BLAS threads then see every CPU)")
    p.add_argument("--process", type=int, default=0, metavar="N",
                   help="instead: N whole `ser analyze` processes per model on a 3-s clip")
    return p


def main() -> int:
    p = parser()
    args = p.parse_args()
    if args.runs < 1 or args.process < 0 or any(s <= 0 for s in args.seconds):
        p.error("--runs must be at least 1, --process at least 0 and --seconds positive")
    if not args.backbones and not args.voice_model:
        print("no voice model named: timing the compact model alone")
    return time_processes(args) if args.process else time_models(args)


if __name__ == "__main__":
    raise SystemExit(main())
