"""Load test of the MCP server over streamable HTTP on localhost. Not a test: a measurement.

Starts `ser-mcp --transport http` on 127.0.0.1 (a free port) with a temporary allowed folder of
synthesised recordings and the repo's speech sample, waits for the model to load (one call), then
fires N tool calls at once from several client sessions and reports latency percentiles, the error
count, throughput and the server process's peak RSS. Loopback only; the number of calls and the
total time are bounded, and the server is stopped at the end.

    python benchmarks/mcp_load.py                       # 64 calls, 8 sessions, embedded model
    python benchmarks/mcp_load.py --calls 100 --sessions 16
    python benchmarks/mcp_load.py --tiny-hf             # a tiny random hf model: the server alone
    python benchmarks/mcp_load.py --warm 20             # instead: 20 warm calls, one at a time, on a 5-s clip
    python benchmarks/mcp_load.py --warm 20 --backbone whisper-base-mid    # the same, voice backend (random head)

--warm N measures what one agent waits for: after the first call (which waits for the model), N calls one after
another in one session on the first 5 s of the repo's speech sample, and their latency (median, p90, best).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import soundfile as sf

from mcp_bench import REPO, SR, add_server_flags, proc_status_mb, server_command, server_env, voice

SAMPLE = REPO / "ser_tool" / "samples" / "speech_en.ogg"
HOST = "127.0.0.1"  # never anything but loopback


def make_audio(folder: Path) -> list[str]:
    from ser_tool.audio import load_audio

    sf.write(folder / "speech_5s.wav", load_audio(str(SAMPLE))[: 5 * SR], SR)  # --warm's clip, not in the load mix
    sf.write(folder / "short.wav", voice(3.0, 180), SR)
    sf.write(folder / "medium.flac", voice(12.0, 140, amp=0.3), SR)
    sf.write(folder / "long.ogg", np.concatenate([voice(20.0, 120), np.zeros(SR, np.float32), voice(20.0, 220, amp=0.4)]), SR)
    shutil.copy(SAMPLE, folder / "speech_en.ogg")
    return ["short.wav", "medium.flac", "long.ogg", "speech_en.ogg"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


async def run_load(url: str, files: list[str], calls: int, sessions: int, deadline: float) -> dict:
    from mcp import ClientSession

    from mcp.client.streamable_http import streamable_http_client

    latencies: list[float] = []
    errors: list[str] = []

    async def one_session(index: int, my_calls: list[int]) -> None:
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as client:
            await client.initialize()

            async def one_call(i: int) -> None:
                args = {"path": files[i % len(files)], "timeline": i % 2 == 0}
                t = time.perf_counter()
                try:
                    res = await client.call_tool("analyze_speech_emotion", args)
                    if res.isError:
                        errors.append(res.content[0].text[:200])
                except Exception as e:  # noqa: BLE001 - counted, not fatal
                    errors.append(f"{type(e).__name__}: {e}")
                latencies.append(time.perf_counter() - t)

            async with anyio.create_task_group() as tg:  # every call of this session in flight at once
                for i in my_calls:
                    tg.start_soon(one_call, i)

    t0 = time.perf_counter()
    with anyio.move_on_after(deadline) as scope:
        async with anyio.create_task_group() as tg:
            for s in range(sessions):
                tg.start_soon(one_session, s, list(range(s, calls, sessions)))
    wall = time.perf_counter() - t0
    unfinished = calls - len(latencies)
    if scope.cancelled_caught:
        errors.extend(["not finished before the deadline"] * unfinished)
    return {"latencies": latencies, "errors": errors, "wall": wall}


async def first_call(url: str, path: str) -> float:
    from mcp import ClientSession

    from mcp.client.streamable_http import streamable_http_client

    t = time.perf_counter()
    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as client:
        await client.initialize()
        res = await client.call_tool("analyze_speech_emotion", {"path": path})
        if res.isError:
            raise SystemExit(f"the warm-up call failed: {res.content[0].text}")
    return time.perf_counter() - t


async def warm_calls(url: str, path: str, n: int) -> list[float]:
    """n calls one after another in one session (the model already loaded): each call's latency."""
    from mcp import ClientSession

    from mcp.client.streamable_http import streamable_http_client

    latencies = []
    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as client:
        await client.initialize()
        for _ in range(n):
            t = time.perf_counter()
            res = await client.call_tool("analyze_speech_emotion", {"path": path})
            latencies.append(time.perf_counter() - t)
            if res.isError:
                raise SystemExit(f"a warm call failed: {res.content[0].text}")
    return latencies


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=64, help="concurrent tool calls (at least 50; default 64)")
    p.add_argument("--sessions", type=int, default=8, help="client sessions the calls are spread over (default 8)")
    p.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds (default 300)")
    p.add_argument("--warm", type=int, default=0, metavar="N",
                   help="instead of the load test: N warm calls one at a time on a 5-s clip (1..1000)")
    add_server_flags(p)
    args = p.parse_args(argv)
    if args.warm and not 1 <= args.warm <= 1000:
        p.error("--warm must be 1..1000")
    if not 50 <= args.calls <= 1000 or not 1 <= args.sessions <= args.calls:
        p.error("--calls must be 50..1000 and --sessions 1..calls")

    with tempfile.TemporaryDirectory(prefix="ser-mcp-load-") as tmp:
        tmp = Path(tmp)
        audio = tmp / "audio"
        audio.mkdir()
        files = make_audio(audio)
        env = server_env(tmp, audio, backend=args.backend, model=args.model, tiny_hf=args.tiny_hf, backbone=args.backbone,
                         precision=args.precision)
        port = free_port()
        cmd = server_command()
        server_log = open(tmp / "server.log", "wb")
        t_start = time.perf_counter()
        proc = subprocess.Popen([*cmd, "--transport", "http", "--host", HOST, "--port", str(port)],
                                env=env, stdout=server_log, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            for _ in range(600):
                if proc.poll() is not None:
                    raise SystemExit(f"the server exited: {(tmp / 'server.log').read_text()}")
                try:
                    with socket.create_connection((HOST, port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            listening = time.perf_counter() - t_start
            url = f"http://{HOST}:{port}/mcp"
            warm = anyio.run(first_call, url, files[0])
            rss_before = proc_status_mb(proc.pid, "VmHWM")
            if args.warm:
                lat = anyio.run(warm_calls, url, "speech_5s.wav", args.warm)
                rss_peak = proc_status_mb(proc.pid, "VmHWM")
                return report_warm(args, env, listening, warm, lat, rss_before, rss_peak)
            result = anyio.run(run_load, url, files, args.calls, args.sessions, args.deadline)
            rss_peak = proc_status_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            server_log.close()

    lat = result["latencies"]
    summary = {
        "calls": args.calls, "sessions": args.sessions, "backend": env["SER_BACKEND"],
        "files": files, "server_listening_s": round(listening, 2), "first_call_s": round(warm, 2),
        "completed": len(lat), "errors": len(result["errors"]), "wall_s": round(result["wall"], 2),
        "throughput_calls_per_s": round(len(lat) / result["wall"], 2) if result["wall"] else None,
        "latency_s": {"p50": round(percentile(lat, 50), 3), "p90": round(percentile(lat, 90), 3),
                      "p99": round(percentile(lat, 99), 3), "max": round(max(lat), 3) if lat else None,
                      "mean": round(statistics.fmean(lat), 3) if lat else None},
        "server_peak_rss_mb": {"after_first_call": rss_before and round(rss_before, 1), "after_load": rss_peak and round(rss_peak, 1)},
        "error_samples": sorted(set(result["errors"]))[:5],
    }
    print(f"ser-mcp load test: {args.calls} concurrent analyze_speech_emotion calls over {args.sessions} HTTP sessions "
          f"({summary['backend']} backend, files {', '.join(files)})")
    print(f"  server listening after {summary['server_listening_s']} s; first call (model load) {summary['first_call_s']} s")
    print(f"  completed {summary['completed']}/{args.calls}, errors {summary['errors']}, wall {summary['wall_s']} s, "
          f"{summary['throughput_calls_per_s']} calls/s")
    ls = summary["latency_s"]
    print(f"  latency s: p50 {ls['p50']}  p90 {ls['p90']}  p99 {ls['p99']}  max {ls['max']}  mean {ls['mean']}")
    print(f"  server peak RSS: {summary['server_peak_rss_mb']['after_first_call']} MiB after the first call, "
          f"{summary['server_peak_rss_mb']['after_load']} MiB after the load")
    for e in summary["error_samples"]:
        print(f"  error: {e}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0 if not result["errors"] else 1


def report_warm(args, env: dict, listening: float, first: float, lat: list[float], rss_before, rss_peak) -> int:
    summary = {
        "backend": env["SER_BACKEND"], "model": env.get("SER_MODEL"), "backbone": args.backbone,
        "precision": env.get("SER_PRECISION", "auto"),
        "server_listening_s": round(listening, 2), "first_call_s": round(first, 2), "warm_calls": len(lat),
        "clip": "speech_5s.wav (the first 5 s of ser_tool/samples/speech_en.ogg)",
        "latency_ms": {"p50": round(percentile(lat, 50) * 1000, 1), "p90": round(percentile(lat, 90) * 1000, 1),
                       "best": round(min(lat) * 1000, 1)},
        "server_peak_rss_mb": {"after_first_call": rss_before and round(rss_before, 1), "after_warm_calls": rss_peak and round(rss_peak, 1)},
        "load_average": load_average(),
    }
    head = f"{summary['backend']} backend" + (f", a random head for {args.backbone}" if args.backbone else "")
    if summary["backend"] == "voice":
        head += f", precision {summary['precision']}"
    print(f"ser-mcp warm calls: {len(lat)} analyze_speech_emotion calls one at a time on a 5-s clip over HTTP ({head})")
    print(f"  server listening after {summary['server_listening_s']} s; first call (model load) {summary['first_call_s']} s")
    ms = summary["latency_ms"]
    print(f"  warm call latency ms: median {ms['p50']}  p90 {ms['p90']}  best {ms['best']}")
    print(f"  server peak RSS: {summary['server_peak_rss_mb']['after_first_call']} MiB after the first call, "
          f"{summary['server_peak_rss_mb']['after_warm_calls']} MiB after the warm calls; load average {summary['load_average']}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
