"""What the MCP server benchmarks (mcp_load.py, security_limits.py) share: the speech-like test signal (ser_tool.testing's), the
`ser-mcp` command with the environment it runs in, and the server process's memory. Not a benchmark itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ser_tool.representations.base import PRECISIONS
from ser_tool.testing import SR, voice  # noqa: F401 - re-exported for the benchmarks

REPO = Path(__file__).resolve().parents[1]
def server_command() -> list[str]:
    """How to start `ser-mcp`: the console script beside this Python, else `python -m mcp_server`."""
    script = Path(sys.executable).parent / "ser-mcp"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "mcp_server"]


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """The flags that choose the server's model: --backend, --model, --tiny-hf, --backbone, --precision; and --json for
    the results."""
    p.add_argument("--backend", default="embedded")
    p.add_argument("--model", help="the model (SER_MODEL) for --backend")
    p.add_argument("--tiny-hf", action="store_true", help="a tiny random hf model (measures the server, not a model)")
    p.add_argument("--backbone", metavar="REP[+REP]",
                   help="the voice backend with a randomly initialised head for this backbone (speed does not depend on its weights)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="the voice backend's encoder precision (SER_PRECISION; default: the server's, auto)")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")


def server_env(tmp: Path, allowed: Path, *, backend: str = "embedded", model: str | None = None,
               tiny_hf: bool = False, backbone: str | None = None, log_level: str = "WARNING",
               precision: str | None = None) -> dict[str, str]:
    """The server's whole environment: only `allowed` readable, offline, this checkout's code (PYTHONPATH), HOME in
    `tmp`; `tiny_hf` builds a tiny random hf model in `tmp` (measures the server, not a model), `backbone` a random
    voice head (ser_tool.testing.make_random_voice_head) for the voice backend. The voice backend reads the joined
    Whisper weights from this user's model cache (XDG_CACHE_HOME), as an installed server would, instead of joining
    them again into `tmp`. `precision`: SER_PRECISION (the voice backend's encoder), unset: the server's default."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "SER_ALLOWED_DIRS": str(allowed),
           "SER_BACKEND": backend, "SER_LOG_LEVEL": log_level, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if tiny_hf:
        from ser_tool.testing import make_tiny_hf_classifier

        env |= {"SER_BACKEND": "hf", "SER_MODEL": str(make_tiny_hf_classifier(tmp / "tiny-hf")), "SER_OFFLINE": "1"}
    elif backbone:
        from ser_tool.testing import make_random_voice_head

        env |= {"SER_BACKEND": "voice", "SER_MODEL": str(make_random_voice_head(tmp / "voice-head", backbone))}
    elif model:
        env["SER_MODEL"] = model
    if precision:
        env["SER_PRECISION"] = precision
    if env["SER_BACKEND"] == "voice":
        from ser_tool.parts import default_cache_dir

        env["XDG_CACHE_HOME"] = str(default_cache_dir().parents[1])  # <cache>/ser-tool/models -> <cache>
    return env


def proc_status_mb(pid: int, field: str) -> float | None:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, MiB (Linux /proc); None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
