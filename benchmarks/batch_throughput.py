"""Benchmark: `ser batch` throughput - local engine at 1 and 2 workers, Ray engine locally - and the
per-file overhead against `Analyzer.analyze` in one process. Not a test.

Takes N clips from ../shared/data (round-robin over the corpora, in manifest order), lists them in a
text file, and runs each configuration into a fresh output folder. For each it prints files/s and x
real time over the whole run (worker start and model load included) and in steady state (rows after
the first 10 %, timed where the workers finished them), and the CPU time per file of the local
engine's workers (model load included): on a busy machine that is the load-independent number. Targets (issue 15): 2 workers >= 1.7x 1 worker; Ray within 25 % of the local engine.

    python benchmarks/batch_throughput.py [--n 1000] [--data ../shared/data] [--skip ray]

The numbers only mean something on an otherwise idle machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ser_tool.backends import BackendSpec  # noqa: E402
from ser_tool.batch import Progress, available_cores, run_batch  # noqa: E402


def pick_clips(data: Path, n: int) -> list[Path]:
    corpora = []
    for manifest in sorted(data.glob("*/manifest.csv")):
        with manifest.open(encoding="utf-8") as f:
            corpora.append([manifest.parent / row["path"] for row in csv.DictReader(f)])
    if not corpora:
        raise SystemExit(f"no corpora (*/manifest.csv) under {data}; pass --data")
    clips: list[Path] = []
    for k in range(max(map(len, corpora))):
        clips += [c[k] for c in corpora if k < len(c)]
        if len(clips) >= n:
            break
    return clips[:n]


class Timer(Progress):
    """When each row was finished in its worker (the row's finished_at). Steady state = the rows after
    the first 10 %, over the time between their finishing: worker start and model load fall outside
    it, and so does Ray handing rows to the driver a block at a time."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def row(self, row) -> None:
        self.times.append(datetime.fromisoformat(row["finished_at"]).timestamp())

    def steady(self) -> float:
        t = sorted(self.times)
        n, k = len(t), max(1, len(t) // 10)
        span = t[-1] - t[k - 1] if n > k else 0.0
        return (n - k) / span if span > 0 else float("nan")


def run(name, clips_list: Path, out: Path, **kwargs) -> dict:
    timer = Timer()
    cpu0 = _cpu(resource.RUSAGE_CHILDREN)
    t0, t0_wall = time.perf_counter(), time.time()
    result = run_batch([str(clips_list)], out, spec=BackendSpec("embedded"), progress=timer, **kwargs)
    wall = time.perf_counter() - t0
    # CPU seconds of the worker processes (reaped when the pool closes; Ray's workers are not our children).
    cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu0 if kwargs.get("engine") == "local" else float("nan")
    steady_fps = timer.steady()
    mean_audio = result.audio_seconds / max(1, result.processed - result.failed)
    return {
        "name": name, "files": result.processed, "failed": result.failed, "wall": wall,
        "fps": result.processed / wall, "xrt": result.audio_seconds / wall,
        "startup": min(timer.times) - t0_wall if timer.times else float("nan"),
        "steady_fps": steady_fps, "steady_xrt": steady_fps * mean_audio, "cpu_ms": 1000 * cpu / max(1, result.processed),
    }


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="clips (default 1000)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--skip", nargs="*", default=[], choices=("inprocess", "local1", "local2", "ray"))
    args = p.parse_args()
    clips = pick_clips(args.data, args.n)
    print(f"{len(clips)} clips from {args.data}; cores {available_cores()}; load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="ser-batch-bench-") as tmp:
        tmp = Path(tmp)
        listing = tmp / "clips.txt"
        listing.write_text("\n".join(str(c) for c in clips) + "\n")

        inproc = None
        if "inprocess" not in args.skip:
            from ser_tool import Analyzer

            analyzer = Analyzer("embedded")
            analyzer.analyze(clips[0], timeline=True)  # load the model outside the timing
            audio, t0, cpu0 = 0.0, time.perf_counter(), _cpu(resource.RUSAGE_SELF)
            for c in clips:
                try:
                    audio += analyzer.analyze(c, timeline=True).duration
                except Exception:  # noqa: BLE001 - bad clips cost their time too, as in the batch
                    pass
            wall = time.perf_counter() - t0
            cpu_ms = 1000 * (_cpu(resource.RUSAGE_SELF) - cpu0) / len(clips)
            inproc = {"cpu_ms": cpu_ms, "name": "Analyzer.analyze, 1 process", "files": len(clips), "failed": 0, "wall": wall,
                      "fps": len(clips) / wall, "xrt": audio / wall, "startup": float("nan"),
                      "steady_fps": len(clips) / wall, "steady_xrt": audio / wall}
            results.append(inproc)
            print(f"  in-process: {wall:.1f} s", flush=True)
        for name, kwargs in (("local1", {"engine": "local", "workers": 1}), ("local2", {"engine": "local", "workers": 2}),
                             ("ray", {"engine": "ray", "workers": 2})):
            if name in args.skip:
                continue
            if name == "ray":
                import ray

                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            try:
                r = run({"local1": "local, 1 worker", "local2": "local, 2 workers", "ray": "ray, local (2 CPUs, 2 actors)"}[name],
                        listing, tmp / name, **kwargs)
            finally:
                if name == "ray":
                    ray.shutdown()
            r["key"] = name
            results.append(r)
            print(f"  {r['name']}: {r['wall']:.1f} s", flush=True)

    print(f"\nload average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'configuration':<32} {'files':>5} {'wall s':>7} {'1st row s':>9} {'files/s':>8} {'x RT':>6} "
          f"{'steady f/s':>10} {'steady xRT':>10} {'CPU ms/file':>11}")
    for r in results:
        print(f"{r['name']:<32} {r['files']:>5} {r['wall']:>7.1f} {r['startup']:>9.1f} {r['fps']:>8.2f} {r['xrt']:>6.1f} "
              f"{r['steady_fps']:>10.2f} {r['steady_xrt']:>10.1f} {r['cpu_ms']:>11.1f}")
    by = {r.get("key"): r for r in results}
    if "local1" in by and "local2" in by:
        print(f"\nlocal 2 workers / 1 worker: {by['local2']['fps'] / by['local1']['fps']:.2f}x overall, "
              f"{by['local2']['steady_fps'] / by['local1']['steady_fps']:.2f}x steady (target >= 1.7x)")
    if "local2" in by and "ray" in by:
        print(f"ray / local at 2 workers: {by['ray']['fps'] / by['local2']['fps']:.2f} overall, "
              f"{by['ray']['steady_fps'] / by['local2']['steady_fps']:.2f} steady (target >= 0.75)")
    if inproc and "local1" in by:
        over = 1 / by["local1"]["steady_fps"] - 1 / inproc["fps"]
        print(f"per-file overhead of the local engine vs Analyzer.analyze in-process: {over * 1000:+.1f} ms/file "
              f"(steady state, 1 worker; {1000 / inproc['fps']:.1f} ms/file in-process), plus "
              f"{by['local1']['startup']:.1f} s until the first row (worker start, model load, first file)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
