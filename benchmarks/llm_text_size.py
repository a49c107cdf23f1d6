"""Benchmark: how many characters an LLM reads for a 4-s, 3.5-min and 60-min recording.

Not a test. Builds each recording, analyses it through the MCP tool in-process (the real server, the
embedded model) and prints the characters of the tool's text result (default and detail='full'), of
the report's description, and of the structured content. Target: under 4,000 characters of text at
any length by default.

The recordings are real acted speech with changing affect: RAVDESS clips from ../shared/data stitched
into moods (a run of clips of one emotion, short pauses between them, then another emotion). Without
the data, or with --synthetic, a synthetic conversation (benchmarks/long_audio.py's) is used instead.

    python benchmarks/llm_text_size.py
    python benchmarks/llm_text_size.py --minutes 0.0667 3.5 --synthetic
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_audio import synth_conversation  # noqa: E402

SR = 16_000
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ravdess"


def stitch_ravdess(path: Path, minutes: float, cache: dict, seed: int = 0) -> None:
    """Write `minutes` of RAVDESS clips grouped into moods of 1-20 clips of one emotion."""
    from ser_tool.audio import load_audio

    with open(DATA / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r["path"])
    rng = random.Random(seed)
    total, written = int(minutes * 60 * SR), 0
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, format="WAV", subtype="PCM_16") as out:
        while written < total:
            label = rng.choice(sorted(by_label))
            for _ in range(rng.randint(1, 20)):
                clip_path = rng.choice(by_label[label])
                if clip_path not in cache:
                    cache[clip_path] = load_audio(DATA / clip_path)
                clip = np.concatenate([cache[clip_path], np.zeros(int(rng.uniform(0.2, 1.0) * SR), np.float32)])
                clip = clip[: total - written]
                out.write(clip)
                written += len(clip)
                if written >= total:
                    break


async def measure(folder: Path, name: str) -> dict:
    from mcp.shared.memory import create_connected_server_and_client_session

    from mcp_server.server import build_server
    from mcp_server.settings import ServerSettings

    server = build_server(ServerSettings(allowed_dirs=[folder], warm_up=False))
    async with create_connected_server_and_client_session(server) as client:
        t0 = time.perf_counter()
        res = await client.call_tool("analyze_speech_emotion", {"path": name})
        seconds = time.perf_counter() - t0
        if res.isError:
            raise SystemExit(f"{name}: {res.content[0].text}")
        full = await client.call_tool("analyze_speech_emotion", {"path": name, "detail": "full"})
    return {
        "analyse_s": seconds,
        "segments": len(res.structuredContent["timeline"] or []),
        "text": sum(len(c.text) for c in res.content),
        "text_full": sum(len(c.text) for c in full.content),
        "description": len(res.structuredContent["description"]),
        "structured": len(json.dumps(res.structuredContent)),
        "sample": res.content[0].text,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[4 / 60, 3.5, 60])
    p.add_argument("--synthetic", action="store_true", help="a synthetic conversation even when RAVDESS is there")
    p.add_argument("--show", action="store_true", help="print the text result of the longest recording")
    args = p.parse_args()
    logging.disable(logging.INFO)  # the server's per-call log lines
    real = not args.synthetic and (DATA / "manifest.csv").is_file()
    print(f"audio: {'RAVDESS clips stitched into moods' if real else 'synthetic conversation'}; "
          "model: embedded; MCP tool analyze_speech_emotion in-process")
    print(f"{'audio':>8} {'segments':>9} {'text':>7} {'text full':>10} {'description':>12} {'structured':>11} {'analyse s':>10}")
    cache: dict = {}
    sample = ""
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            name = f"rec_{minutes:g}min." + ("wav" if real else "opus")
            path = Path(tmp) / name
            if real:
                stitch_ravdess(path, minutes, cache)
            else:
                synth_conversation(path, minutes)
            r = asyncio.run(measure(Path(tmp), name))
            label = f"{minutes * 60:.0f} s" if minutes < 1 else f"{minutes:g} m"
            print(f"{label:>8} {r['segments']:>9} {r['text']:>7,} {r['text_full']:>10,} {r['description']:>12,} "
                  f"{r['structured']:>11,} {r['analyse_s']:>10.1f}", flush=True)
            sample = r["sample"]
            path.unlink()
    if args.show:
        print("\n" + sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
