"""Benchmark: `ser batch` throughput - local engine at 1 and 2 workers, Ray engine locally - and the
per-file overhead against `Analyzer.analyze` in one process. Not a test.

Takes N clips from ../shared/data (round-robin over the corpora, in manifest order; beyond the clips
there are, the same clips again through symbolic links, which the job counts as other recordings),
lists them in a text file, and runs each configuration into a fresh output folder. For each it prints
files/s and x real time over the whole run (worker start and model load included), in steady state
(rows after the first 10 %, timed where the workers finished them) and after the first row, and the
CPU time per file: of the workers (model load included), and of every process of the job (the driver;
for Ray also its own processes: GCS, raylet, agents, Ray Data's helper actors). On a busy machine CPU
time is the load-independent number. Targets (issue 15): 2 workers >= 1.7x 1 worker; Ray within 25 %
of the local engine.

The two "no model" rows run the same jobs with a stand-in that answers every file with one report made
at start, reading no audio: what each engine costs by itself. From them the script prints how much of the
target's time budget Ray spends before any analysis, and the analysis speed the rest would demand.

Ray's start-up is timed apart: `ray.init` (the "start s" column) and `ray.shutdown` are outside the
Ray row's wall time, as in earlier runs of this script; `ser batch --engine ray` pays both, so the
ratio is printed with and without them.

    python benchmarks/batch_throughput.py [--n 1000] [--repeats 1] [--data ../shared/data] [--skip ray ...]

With --repeats R the configurations run R times, interleaved (each one back to back with the others,
so that a change in the machine's load hits all of them); the table shows medians and the ratios
are the medians of each round's ratios. Ctrl-C prints what was measured so far.
The numbers only mean something on an otherwise idle machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ser_tool import Analyzer  # noqa: E402
from ser_tool.backends import BackendSpec  # noqa: E402
from ser_tool.batch import Progress, available_cores, run_batch  # noqa: E402
from ser_tool.testing import SR, FakeBackend, voice  # noqa: E402

class _NullAnalyzer(Analyzer):
    """Answers every recording with one report made at start, reading nothing: the engine's own cost, no model's."""

    def analyze(self, audio, **kwargs):
        if getattr(self, "_canned", None) is None:
            self._canned = super().analyze(voice(3.0), sample_rate=SR, timeline=True)
        return self._canned


@dataclass(frozen=True)
class NullFactory:  # picklable: the workers build the analyzer
    def __call__(self) -> Analyzer:
        return _NullAnalyzer(FakeBackend())


CONFIGS = {  # key: (label, run_batch arguments)
    "local1": ("local, 1 worker", {"engine": "local", "workers": 1}),
    "local2": ("local, 2 workers", {"engine": "local", "workers": 2}),
    "ray": ("ray, local (2 CPUs, 2 actors)", {"engine": "ray", "workers": 2}),
    # the same jobs with a model that costs nothing and reads no audio: what each engine costs by itself
    "null-local2": ("no model: local, 2 workers", {"engine": "local", "workers": 2, "make_analyzer": NullFactory()}),
    "null-ray": ("no model: ray (2 CPUs, 2 actors)", {"engine": "ray", "workers": 2, "make_analyzer": NullFactory()}),
}
NAN = float("nan")


def corpus_clips(data: Path) -> list[Path]:
    """Every clip of every corpus under `data`, round-robin over the corpora (a prefix mixes them all)."""
    corpora = []
    for manifest in sorted(data.glob("*/manifest.csv")):
        with manifest.open(encoding="utf-8") as f:
            corpora.append([manifest.parent / row["path"] for row in csv.DictReader(f)])
    if not corpora:
        raise SystemExit(f"no corpora (*/manifest.csv) under {data}; pass --data")
    clips: list[Path] = []
    for k in range(max(map(len, corpora))):
        clips += [c[k] for c in corpora if k < len(c)]
    return clips


def pick_clips(data: Path, n: int, links: Path | None = None) -> list[Path]:
    """The first n clips; beyond the corpora's size, the same clips again as symbolic links in `links`."""
    clips = corpus_clips(data)[:n]
    if n > len(clips) and links is not None:
        distinct = list(clips)
        for k in range(len(distinct), n):
            src = distinct[k % len(distinct)]
            link = links / f"{k // len(distinct)}" / f"{k:07d}{src.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src.resolve())
            clips.append(link)
    return clips


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
        return (n - k) / span if span > 0 else NAN


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def descendants_cpu() -> float:
    """CPU seconds of this process's live descendants (Ray's processes: not our children to reap)."""
    if not os.path.isdir("/proc"):
        return NAN
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d)], cpu[int(d)] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    family, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - family
        family |= frontier
    return sum(cpu[p] for p in family)


def run(key: str, clips_list: Path, out: Path) -> dict:
    label, kwargs = CONFIGS[key]
    ray = None
    start = shutdown = NAN
    self0, kids0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    if kwargs["engine"] == "ray":
        import logging

        import ray

        t = time.perf_counter()  # the same call run_batch makes when Ray is not started yet
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        start = time.perf_counter() - t
    timer = Timer()
    t0, t0_wall = time.perf_counter(), time.time()
    try:
        result = run_batch([str(clips_list)], out, spec=BackendSpec("embedded"), progress=timer, **kwargs)
        wall = time.perf_counter() - t0
        if result.interrupted:  # run_batch took the Ctrl-C: a partial run is no measurement
            raise KeyboardInterrupt
        if "make_analyzer" in kwargs and result.failed:  # the stand-in must answer every file, or nothing was measured
            raise SystemExit(f"{label}: {result.failed} error row(s) from the stand-in model; see {out}")
        if ray is not None:
            workers_cpu = NAN  # Ray's actors are not ours to reap; all of Ray's processes are counted below
            all_cpu = descendants_cpu() + _cpu(resource.RUSAGE_SELF) - self0
        else:  # the pool's workers were reaped when it closed
            workers_cpu = _cpu(resource.RUSAGE_CHILDREN) - kids0
            all_cpu = workers_cpu + _cpu(resource.RUSAGE_SELF) - self0
    finally:
        if ray is not None:
            t = time.perf_counter()
            ray.shutdown()
            shutdown = time.perf_counter() - t
    first = min(timer.times) - t0_wall if timer.times else NAN
    steady_fps = timer.steady()
    mean_audio = result.audio_seconds / max(1, result.processed - result.failed)
    files = max(1, result.processed)
    return {
        "key": key, "name": label, "files": result.processed, "failed": result.failed, "wall": wall,
        "start": start, "shutdown": shutdown, "fps": result.processed / wall, "xrt": result.audio_seconds / wall,
        "startup": first, "steady_fps": steady_fps, "steady_xrt": steady_fps * mean_audio,
        "after_fps": (result.processed - 1) / (wall - first) if wall > first else NAN,
        "cpu_ms": 1000 * workers_cpu / files, "all_cpu_ms": 1000 * all_cpu / files,
    }


def in_process(clips: list[Path]) -> dict:
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
    return {"key": "inprocess", "name": "Analyzer.analyze, 1 process", "files": len(clips), "failed": 0, "wall": wall,
            "start": NAN, "shutdown": NAN, "fps": len(clips) / wall, "xrt": audio / wall, "startup": NAN,
            "steady_fps": len(clips) / wall, "steady_xrt": audio / wall, "after_fps": len(clips) / wall,
            "cpu_ms": cpu_ms, "all_cpu_ms": cpu_ms}


def _median(rows: list[dict], field: str) -> float:
    values = [r[field] for r in rows if r[field] == r[field]]  # NaN != NaN
    return statistics.median(values) if values else NAN


def _ratios(rounds: list[dict[str, dict]], num: str, den: str, f, unit: str = "") -> str:
    """The median over the rounds of f(num's result, den's result), with the range when there are several."""
    values = [f(r[num], r[den]) for r in rounds if num in r and den in r]
    if not values:
        return "nan"
    med = statistics.median(values)
    return f"{med:.2f}{unit}" + (f" (range {min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")


COLUMNS = [  # (header, field, format)
    ("files", "files", "5d"), ("start s", "start", "7.1f"), ("wall s", "wall", "7.1f"),
    ("1st row s", "startup", "9.1f"), ("files/s", "fps", "8.2f"), ("x RT", "xrt", "6.1f"),
    ("steady f/s", "steady_fps", "10.2f"), ("steady xRT", "steady_xrt", "10.1f"),
    ("after 1st f/s", "after_fps", "13.2f"), ("CPU ms/file", "cpu_ms", "11.1f"),
    ("all CPU ms/file", "all_cpu_ms", "15.1f"),
]


def _fps(a, b):
    return a["fps"] / b["fps"]


def _steady(a, b):
    return a["steady_fps"] / b["steady_fps"]


def _after_first(a, b):
    return a["after_fps"] / b["after_fps"]


def _as_the_cli_pays(ray, local):  # throughput ratio with ray.init and ray.shutdown counted
    return local["wall"] / (ray["start"] + ray["wall"] + ray["shutdown"])


def report(rounds: list[dict[str, dict]]) -> None:
    print(f"\nload average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not rounds:
        return
    if len(rounds) > 1:
        print(f"medians of {len(rounds)} rounds")
    print(f"{'configuration':<32} " + " ".join(f"{h:>{int(fmt[:-1].split('.')[0])}}" for h, _, fmt in COLUMNS))
    for key in [k for k in ("inprocess", *CONFIGS) if any(k in r for r in rounds)]:
        rows = [r[key] for r in rounds if key in r]
        cells = [format(_median(rows, f) if f != "files" else rows[0]["files"], fmt) for _, f, fmt in COLUMNS]
        print(f"{rows[0]['name']:<32} " + " ".join(cells))
    print()
    if any("local1" in r and "local2" in r for r in rounds):
        print(f"local 2 workers / 1 worker: {_ratios(rounds, 'local2', 'local1', _fps, 'x')} overall, "
              f"{_ratios(rounds, 'local2', 'local1', _steady, 'x')} steady (target >= 1.7x)")
    if any("local2" in r and "ray" in r for r in rounds):
        print(f"ray / local at 2 workers: {_ratios(rounds, 'ray', 'local2', _fps)} overall (ray.init and ray.shutdown "
              f"outside), {_ratios(rounds, 'ray', 'local2', _as_the_cli_pays)} overall as `ser batch --engine ray` "
              f"pays them, {_ratios(rounds, 'ray', 'local2', _steady)} steady, "
              f"{_ratios(rounds, 'ray', 'local2', _after_first)} after the first row (target >= 0.75)")
        ray, local = [r["ray"] for r in rounds if "ray" in r], [r["local2"] for r in rounds if "local2" in r]
        print(f"ray's fixed start-up: ray.init {_median(ray, 'start'):.1f} s, then {_median(ray, 'startup'):.1f} s to "
              f"the first row (local engine: {_median(local, 'startup'):.1f} s), ray.shutdown "
              f"{_median(ray, 'shutdown'):.1f} s; CPU of all processes {_median(ray, 'all_cpu_ms'):.1f} ms/file "
              f"(local: {_median(local, 'all_cpu_ms'):.1f})")
    if any("null-ray" in r and "local2" in r for r in rounds):
        null_ray = [r["null-ray"] for r in rounds if "null-ray" in r]
        local = [r["local2"] for r in rounds if "local2" in r]
        n = local[0]["files"]
        ray_alone = _median([{"t": r["start"] + r["wall"] + r["shutdown"]} for r in null_ray], "t")
        budget = _median(local, "wall") / 0.75
        left = (f"leaves {budget - ray_alone:.1f} s for the analysis, which would have to run at "
                f"{n / (budget - ray_alone):.1f} files/s" if budget > ray_alone else
                "is more than that: no model, however fast, meets the target at this size")
        print(f"ray by itself (no model, {n} files): ray.init {_median(null_ray, 'start'):.1f} s + the job "
              f"{_median(null_ray, 'wall'):.1f} s (first row after {_median(null_ray, 'startup'):.1f} s) + ray.shutdown "
              f"{_median(null_ray, 'shutdown'):.1f} s = {ray_alone:.1f} s. The target (>= 0.75 of the local engine's "
              f"throughput, as `ser batch --engine ray` pays) gives Ray {budget:.1f} s for these {n} files; what Ray "
              f"takes by itself {left} (the local engine's steady state on 2 workers: "
              f"{_median(local, 'steady_fps'):.1f} files/s)")
    if any("inprocess" in r and "local1" in r for r in rounds):
        inproc = [r["inprocess"] for r in rounds if "inprocess" in r]
        local1 = [r["local1"] for r in rounds if "local1" in r]
        over = 1 / _median(local1, "steady_fps") - 1 / _median(inproc, "fps")
        print(f"per-file overhead of the local engine vs Analyzer.analyze in-process: {over * 1000:+.1f} ms/file "
              f"(steady state, 1 worker; {1000 / _median(inproc, 'fps'):.1f} ms/file in-process), plus "
              f"{_median(local1, 'startup'):.1f} s until the first row (worker start, model load, first file)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="clips (default 1000; more than the corpora hold: repeated)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of every configuration, interleaved (default 1)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--skip", nargs="*", default=[], choices=("inprocess", *CONFIGS))
    args = p.parse_args()
    if args.n < 1 or args.repeats < 1:
        p.error("--n and --repeats must be at least 1")
    rounds: list[dict[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="ser-batch-bench-") as tmp:
        tmp = Path(tmp)
        clips = pick_clips(args.data, args.n, links=tmp / "links")
        distinct = min(len(clips), len(corpus_clips(args.data)))
        repeated = (f" ({distinct} distinct; the rest are the same clips again through links)"
                    if distinct < len(clips) else "")
        print(f"{len(clips)} clips from {args.data}{repeated}; "
              f"cores {available_cores()}; {datetime.now().astimezone().isoformat(timespec='seconds')}; "
              f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        listing = tmp / "clips.txt"
        listing.write_text("\n".join(str(c) for c in clips) + "\n")
        try:
            for k in range(args.repeats):
                results: dict[str, dict] = {}
                rounds.append(results)
                for key in ("inprocess", *CONFIGS):
                    if key in args.skip:
                        continue
                    name = "in-process" if key == "inprocess" else CONFIGS[key][0]
                    print(f"  {f'round {k + 1}: ' if args.repeats > 1 else ''}{name} ...", end="", flush=True)
                    r = in_process(clips) if key == "inprocess" else run(key, listing, tmp / f"{key}-{k}")
                    results[key] = r
                    start = f"ray.init {r['start']:.1f} s + " if r["start"] == r["start"] else ""
                    print(f" {start}{r['wall']:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
        except KeyboardInterrupt:
            print("\ninterrupted: the configurations that finished so far", flush=True)
            if rounds and not rounds[-1]:
                rounds.pop()
    report(rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
