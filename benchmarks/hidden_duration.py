"""Benchmark: peak memory of the decoder against a file whose header hides its real length.

Not a test. Builds a Matroska file holding HOURS of audio (8 kHz PCM, so it is quick to make) whose
header claims 1 s, then opens it with `ser_tool.open_audio` in a fresh Python process under the
default limits (2 h) and reports the outcome, the wall time and the peak RSS of that process and of
its ffmpeg child, next to a baseline process that decodes a 10-s clip the same way.

    python benchmarks/hidden_duration.py              # 3 hours behind a 1-s header
    python benchmarks/hidden_duration.py --hours 1.5  # under the limit: decoded (twice: counted, then kept)

Before the fix (audioread) the 3-h case peaked at 5.2 GB; it must stay near the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import ser_tool
from ser_tool import AudioError, open_audio
t0 = time.perf_counter()
try:
    with open_audio(sys.argv[1]) as src:
        outcome = f"decoded {src.duration:.0f} s"
except AudioError as e:
    outcome = f"{type(e).__name__}: {e}"
print(json.dumps({
    "outcome": outcome, "seconds": round(time.perf_counter() - t0, 2),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "ffmpeg_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
}))
"""


def _hide_duration(path: Path) -> None:
    data = bytearray(path.read_bytes())
    i = data.find(b"\x44\x89\x88")  # Segment Duration, 8-byte float, in ms (default timecode scale)
    if i < 0:
        sys.exit("no Duration element found in the Matroska header")
    data[i + 3: i + 11] = struct.pack(">d", 1000.0)
    path.write_bytes(bytes(data))


def _make(path: Path, seconds: float, hide: bool) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"sine=f=220:sample_rate=8000:duration={seconds}",
         "-c:a", "pcm_s16le", "-f", "matroska", str(path)],
        check=True,
    )
    if hide:
        _hide_duration(path)


def _run(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0, help="real length hidden behind the 1-s header")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed to build the test files")
    with tempfile.TemporaryDirectory() as tmp:
        clip, hidden = Path(tmp) / "clip.mka", Path(tmp) / "hidden.mka"
        _make(clip, 10, hide=False)
        _make(hidden, args.hours * 3600, hide=True)
        print(f"hidden file: {hidden.stat().st_size / 2**20:.0f} MiB, {args.hours:g} h behind a 1-s header")
        for label, path in (("baseline (10-s clip)", clip), (f"hidden {args.hours:g} h", hidden)):
            r = _run(path)
            print(f"{label:22s} {r['seconds']:6.2f} s  peak RSS {r['peak_rss_mb']:7.1f} MB  "
                  f"ffmpeg {r['ffmpeg_peak_rss_mb']:6.1f} MB  -> {r['outcome'][:110]}")


if __name__ == "__main__":
    main()
