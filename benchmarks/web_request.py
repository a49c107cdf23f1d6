"""Time and memory of one `ser-agent web` request: upload -> analysis -> result + timeline picture (+ one chat turn).

analysis: from the upload to the poll that sees the result (decoding, the emotion model, the timeline picture,
which the worker draws); +png GET: the same plus fetching the picture; chat: one turn with the affect.

    python benchmarks/web_request.py                 # a 10-s clip and a 5-min recording, each in a fresh process
    python benchmarks/web_request.py --model local   # also time one reply of the offline chat model

The recordings are real RAVDESS speech from ../shared/data (clips joined end to end with short pauses), or a
synthetic voice where the data is absent. Each case runs in its own process through the real app (FastAPI's
TestClient, the bundled emotion model); peak RSS is the process's high-water mark, the baseline the RSS once the
app is built and the model loaded (by a warm-up request on 4 s of audio).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "ravdess"
SR = 16_000
CASES = {"10-s clip": 10.0, "5-min recording": 300.0}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recording(seconds: float) -> tuple[bytes, str]:
    """WAV bytes of about `seconds` of speech, and where it came from."""
    import soundfile as sf

    from ser_tool import load_audio

    parts, total, source = [], 0, "synthetic voice (no ../shared/data)"
    manifest = SHARED / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as f:
            paths = [SHARED / r["path"] for r in csv.DictReader(f)]
        source = "RAVDESS clips joined"
        for p in paths:
            x = load_audio(p)
            parts += [x, np.zeros(int(0.3 * SR), np.float32)]
            total += len(x) + int(0.3 * SR)
            if total >= seconds * SR:
                break
    if not parts:
        t = np.arange(int(seconds * SR)) / SR
        parts = [(0.2 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)]
    x = np.concatenate(parts)[: int(seconds * SR)]
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue(), source


def one_case(seconds: float, model_spec: str | None) -> dict:
    from fastapi.testclient import TestClient

    from agents.pipeline import AffectPipeline
    from agents.testing import ScriptedChatModel
    from agents.web import create_app
    from ser_tool import Analyzer

    model = model_spec or ScriptedChatModel(rule=lambda text: "A scripted reply.")
    audio, source = recording(seconds)
    warm, _ = recording(4.0)
    with TestClient(create_app(AffectPipeline(model, analyzer=Analyzer("embedded")))) as c:
        run(c, warm)  # loads the emotion model
        base = rss_mb()
        t0 = time.perf_counter()
        job, polls = run(c, audio)
        t_analysis = time.perf_counter() - t0
        png = c.get(f"/api/jobs/{job}/timeline.png").content
        t_png = time.perf_counter() - t0
        t1 = time.perf_counter()
        turn = c.post(f"/api/jobs/{job}/chat", json={"message": "How do I sound?", "compare": False})
        t_chat = time.perf_counter() - t1
        assert turn.status_code == 200, turn.text
    return {"seconds": seconds, "source": source, "upload_mb": len(audio) / 2**20, "analysis_s": t_analysis,
            "with_picture_s": t_png, "chat_s": t_chat, "polls": polls, "png_kb": len(png) / 1024,
            "base_rss_mb": base, "peak_rss_mb": peak_mb(), "chat_model": model_spec or "scripted"}


def run(c, audio: bytes) -> tuple[str, int]:
    r = c.post("/api/analyze", params={"name": "bench.wav"}, content=audio)
    assert r.status_code == 202, r.text
    job, polls = r.json()["job"], 0
    while True:
        status = c.get(f"/api/jobs/{job}").json()
        polls += 1
        if status["state"] == "done":
            return job, polls
        if status["state"] == "failed":
            raise SystemExit(f"the analysis failed: {status['error']}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="chat model to time one reply of (default: a scripted one, ~0 s)")
    parser.add_argument("--case", type=float, help=argparse.SUPPRESS)  # one case, in this process (internal)
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(one_case(args.case, args.model)))
        return 0
    print(f"{'case':<16} {'upload':>8} {'analysis':>9} {'+png GET':>9} {'chat':>7} {'base RSS':>9} {'peak RSS':>9}  source")
    for name, seconds in CASES.items():
        cmd = [sys.executable, __file__, "--case", str(seconds)] + (["--model", args.model] if args.model else [])
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<16} {r['upload_mb']:>6.1f}MB {r['analysis_s']:>8.2f}s {r['with_picture_s']:>8.2f}s {r['chat_s']:>6.2f}s "
              f"{r['base_rss_mb']:>7.0f}MB {r['peak_rss_mb']:>7.0f}MB  {r['source']} ({r['chat_model']} chat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
