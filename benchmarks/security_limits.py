"""Resource limits of `ser-mcp` under attack. Not a test: a measurement (security issue, "Done when").

Starts `ser-mcp` over stdio (as a desktop client does) with a temporary allowed folder and prints:

1. memory: the server's resident set after analysing a normal 10-s clip (its working set), then its
   peak (VmHWM) while it handles the hidden-duration attack - a WebM/Opus file whose header claims
   1 s but that holds hours of audio, so it goes through the ffmpeg fallback decoder (libsndfile does
   not read WebM). Target: peak < working set + 200 MB.
2. cancellation: how long the server's worker thread keeps going after the client cancels a long call
   (MCP notifications/cancelled) on a ~2-h recording - once during the speech-detection pass and once
   while the model runs - read from the server's log line, and the latency of the next call (is the
   server free again?). Target: < 2 s.

Linux only (/proc/<pid>/status). Needs ffmpeg. Takes one to three minutes.

    python benchmarks/security_limits.py                 # embedded model, 3-h hidden-duration file
    python benchmarks/security_limits.py --hidden-hours 1 --tiny-hf
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import anyio
import soundfile as sf

from mcp_bench import SR, add_server_flags, proc_status_mb, server_command, server_env, voice

MB = 2**20
STOP_LINE = re.compile(r"worker stopped ([0-9.]+) s later")


def write_long_recording(path: Path, seconds: int) -> None:
    """`seconds` of speech-like audio, written a minute at a time (never all in memory)."""
    minute = [voice(60.0, f0) for f0 in (120.0, 170.0, 220.0)]
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for i in range(0, seconds, 60):
            f.write(minute[(i // 60) % 3][: (min(seconds, i + 60) - i) * SR])


def write_hidden_duration_webm(path: Path, hours: float, tmp: Path) -> None:
    """A WebM/Opus file of `hours` of audio whose Segment Duration says 1 s.

    Ten minutes are encoded once and looped by remuxing (fast); then the header's Duration element
    (EBML id 0x4489, an 8-byte float of milliseconds) is overwritten with 1000.0."""
    chunk = tmp / "chunk.webm"
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=220:sample_rate=48000:duration=600", "-ac", "1", "-c:a", "libopus", "-b:a", "6k",
                    "-compression_level", "0", "-f", "webm", str(chunk)], check=True)
    loops = hidden_chunks(hours)
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1),
                    "-i", str(chunk), "-c", "copy", "-f", "webm", str(path)], check=True)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88", 0, 4096)
    if at < 0:
        raise SystemExit("could not find the Duration element in the WebM header ffmpeg wrote")
    data[at + 3: at + 11] = struct.pack(">d", 1000.0)
    path.write_bytes(data)


def hidden_chunks(hours: float) -> int:
    """How many 10-minute chunks make up the hidden audio."""
    return max(1, round(hours * 6))


def server_pid() -> int:
    """The ser-mcp process: the child of this process the SDK's stdio client started."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            return int(stat.parent.name)
    raise SystemExit("could not find the ser-mcp process")


async def run(args, folder: Path, env: dict, log_path: Path) -> dict:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.shared.exceptions import McpError
    from mcp.types import CancelledNotification, CancelledNotificationParams, ClientNotification

    command, *cmd_args = server_command()
    params = StdioServerParameters(command=command, args=cmd_args, env=env)
    out: dict = {}
    long_timeout = timedelta(seconds=args.deadline)
    with open(log_path, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            pid = server_pid()

            async def timed_call(tool_args: dict) -> tuple[float, object]:
                t = time.perf_counter()
                res = await client.call_tool("analyze_speech_emotion", tool_args, read_timeout_seconds=long_timeout)
                return time.perf_counter() - t, res

            # 1. memory: the normal working set, then the hidden-duration attack
            await timed_call({"path": "clip10s.wav"})  # loads the model
            normal_s, res = await timed_call({"path": "clip10s.wav"})
            if res.isError:
                raise SystemExit(f"the normal call failed: {res.content[0].text}")
            out["normal_call_s"] = normal_s
            out["normal_rss_mb"] = proc_status_mb(pid, "VmRSS")
            out["normal_peak_mb"] = proc_status_mb(pid, "VmHWM")
            attack_s, res = await timed_call({"path": "hidden.webm"})
            out["attack_s"] = attack_s
            out["attack_result"] = ("error: " if res.isError else "analysed: ") + res.content[0].text[:300]
            out["attack_peak_mb"] = proc_status_mb(pid, "VmHWM")
            out["attack_rss_after_mb"] = proc_status_mb(pid, "VmRSS")

            # 2. cancellation, during the speech-detection pass and while the model runs
            for phase in ("vad", "model"):
                model_started = anyio.Event()

                async def progress(done, total, message, _started=model_started) -> None:
                    if total:  # window progress: the model stage has begun
                        _started.set()

                request_id = client._request_id  # the id of the next request (the SDK exposes no handle)
                outcome: dict = {}

                # The model phase uses the energy detector: WebRTC's would spend minutes on 2 h before the model starts.
                call_args = {"path": "long.wav"} if phase == "vad" else {"path": "long.wav", "vad": "energy"}

                async def long_call(_outcome=outcome, _progress=progress, _args=call_args) -> None:
                    try:
                        _outcome["result"] = await client.call_tool(
                            "analyze_speech_emotion", _args, read_timeout_seconds=long_timeout,
                            progress_callback=_progress)
                    except McpError as e:
                        _outcome["error"] = e.error.message

                log_mark = log_path.stat().st_size
                async with anyio.create_task_group() as tg:
                    t0 = time.perf_counter()
                    tg.start_soon(long_call)
                    if phase == "vad":
                        await anyio.sleep(1.5)
                    else:
                        with anyio.fail_after(args.deadline):
                            await model_started.wait()
                    started_s = time.perf_counter() - t0
                    await client.send_notification(ClientNotification(CancelledNotification(
                        params=CancelledNotificationParams(requestId=request_id, reason="benchmark"))))
                    t_cancel = time.perf_counter()
                next_s, res = await timed_call({"path": "clip10s.wav"})
                after_cancel_s = time.perf_counter() - t_cancel
                stopped = None
                for _ in range(50):  # the log line is written as the worker ends; the next call came after it
                    errlog.flush()
                    with open(log_path) as f:
                        f.seek(log_mark)
                        m = STOP_LINE.search(f.read())
                    if m:
                        stopped = float(m.group(1))
                        break
                    await anyio.sleep(0.1)
                out[f"cancel_{phase}"] = {
                    "cancelled_after_s": started_s, "client_saw": outcome.get("error") or "a result (not cancelled)",
                    "worker_stopped_after_cancel_s": stopped, "next_call_s": next_s,
                    "next_call_done_after_cancel_s": after_cancel_s, "next_call_ok": not res.isError,
                }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden-hours", type=float, default=3.0, help="audio hidden behind the 1-s header (default 3 h)")
    p.add_argument("--long-minutes", type=float, default=119.0, help="the recording whose analysis is cancelled (default 119 min)")
    p.add_argument("--deadline", type=float, default=240.0, help="longest any one call may take, seconds (default 240)")
    add_server_flags(p)
    args = p.parse_args(argv)
    if not Path("/proc/self/status").is_file() or not shutil.which("ffmpeg"):
        raise SystemExit("this benchmark needs Linux (/proc) and ffmpeg")

    with tempfile.TemporaryDirectory(prefix="ser-security-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "audio"
        folder.mkdir()
        t = time.perf_counter()
        sf.write(folder / "clip10s.wav", voice(10.0, 160.0), SR)
        write_long_recording(folder / "long.wav", int(args.long_minutes * 60))
        write_hidden_duration_webm(folder / "hidden.webm", args.hidden_hours, tmp)
        prep_s = time.perf_counter() - t
        env = server_env(tmp, folder, backend=args.backend, model=args.model, tiny_hf=args.tiny_hf, backbone=args.backbone,
                         precision=args.precision,
                         log_level="INFO")
        log_path = tmp / "server.log"
        try:
            r = anyio.run(run, args, folder, env, log_path)
        except BaseException:
            print(log_path.read_text()[-3000:] if log_path.exists() else "(no server log)", file=sys.stderr)
            raise
        hidden_mb = (folder / "hidden.webm").stat().st_size / MB

    budget = r["normal_rss_mb"] + 200
    print(f"ser-mcp security limits ({env['SER_BACKEND']} backend, stdio; inputs prepared in {prep_s:.1f} s)")
    hidden_h = hidden_chunks(args.hidden_hours) / 6
    print(f"1. hidden duration: {hidden_mb:.1f} MB WebM/Opus, header says 1 s, holds {hidden_h:g} h (ffmpeg fallback)")
    print(f"   normal working set after a 10-s clip: RSS {r['normal_rss_mb']:.0f} MiB (peak so far {r['normal_peak_mb']:.0f} MiB)")
    print(f"   attack call took {r['attack_s']:.1f} s -> {r['attack_result'][:160]}")
    print(f"   server peak RSS during the attack {r['attack_peak_mb']:.0f} MiB = working set + "
          f"{r['attack_peak_mb'] - r['normal_rss_mb']:.0f} MiB (target < +200 MiB: "
          f"{'PASS' if r['attack_peak_mb'] < budget else 'FAIL'}); RSS afterwards {r['attack_rss_after_mb']:.0f} MiB")
    for phase, what in (("vad", "speech detection"), ("model", "the model pass")):
        c = r[f"cancel_{phase}"]
        stopped = c["worker_stopped_after_cancel_s"]
        verdict = "no stop line in the server log" if stopped is None else f"{stopped:.3f} s ({'PASS' if stopped < 2 else 'FAIL'}, target < 2 s)"
        print(f"2. cancel during {what} ({args.long_minutes:g}-min recording, cancelled {c['cancelled_after_s']:.1f} s in): "
              "\n   "
              f"client got '{c['client_saw']}'; worker stopped after {verdict}; next call "
              f"{'ok' if c['next_call_ok'] else 'FAILED'} in {c['next_call_s']:.2f} s "
              f"({c['next_call_done_after_cancel_s']:.2f} s after the cancel; a normal call takes {r['normal_call_s']:.2f} s)")
    if args.json:
        print(json.dumps(r, indent=2))
    stops = [r[f"cancel_{ph}"]["worker_stopped_after_cancel_s"] for ph in ("vad", "model")]
    ok = r["attack_peak_mb"] < budget and all(s is not None and s < 2 for s in stops)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
