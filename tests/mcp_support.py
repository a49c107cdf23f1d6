"""Helpers shared by the MCP tests: a real backend to run (embedded when shipped, else a tiny random
hf model), audio fixtures on disk, a loopback file server, and result checks."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import numpy as np
import soundfile as sf

from conftest import SAMPLE, SR, silence, voice
from ser_tool import AffectReport, Analyzer, SERError


@functools.lru_cache(maxsize=1)
def embedded_available() -> bool:
    """Whether the shipped model is there (it is trained separately and may be missing in a checkout)."""
    try:
        Analyzer("embedded").backend
    except SERError:
        return False
    return True


def backend_settings(kind: str, tiny_dir: Path) -> dict:
    """ServerSettings keyword arguments for a real backend: 'embedded' or 'hf-tiny'."""
    if kind == "embedded":
        return {"backend": "embedded"}
    return {"backend": "hf", "model": str(tiny_dir), "offline": True}


def backend_env(settings: dict) -> dict[str, str]:
    """The same settings as SER_* environment variables (what an MCP client's `env` block holds)."""
    env = {f"SER_{k.upper()}": ("1" if v is True else str(v)) for k, v in settings.items()}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def write_audio_fixtures(folder: Path) -> dict[str, Path]:
    """Synthesised recordings (plus the repo's speech sample) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "short": folder / "short.wav",
        "long": folder / "long.flac",
        "sample": folder / "speech_en.ogg",
        "corrupt": folder / "corrupt.wav",
        "silent": folder / "silent.wav",
    }
    sf.write(files["short"], voice(3.0, f0=180), SR)
    sf.write(files["long"], np.concatenate([voice(8.0), silence(1.0), voice(8.0, f0=220, amp=0.4)]), SR)
    shutil.copy(SAMPLE, files["sample"])
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    sf.write(files["silent"], silence(2.0), SR)
    return files


def check_report(result, tool, detail: str = "summary") -> AffectReport:
    """A successful analyze result: structured content valid against the tool's published output
    schema, the compact text (the description first) and, only for detail='full', the JSON of the same
    report after it (the structured content always holds the full report; the text stays small)."""
    assert not result.isError, result.content[0].text
    assert tool.outputSchema is not None
    jsonschema.validate(result.structuredContent, tool.outputSchema)
    report = AffectReport.model_validate(result.structuredContent)
    assert result.content[0].text.startswith(report.description)
    assert len(result.content) == (2 if detail == "full" else 1)
    if detail == "full":
        assert json.loads(result.content[1].text) == result.structuredContent
    assert all(c.type == "text" for c in result.content)  # never audio content
    return report


def check_batch(result, tool) -> dict:
    assert not result.isError, result.content[0].text
    jsonschema.validate(result.structuredContent, tool.outputSchema)
    for entry in result.structuredContent["results"]:
        if entry["report"] is not None:
            AffectReport.model_validate(entry["report"])
    assert all(c.type == "text" for c in result.content)
    return result.structuredContent


def error_text(result) -> str:
    assert result.isError, f"expected an error result, got {result.content[0].text[:200]}"
    assert result.structuredContent is None
    return result.content[0].text


def ser_mcp_command() -> tuple[str, list[str]]:
    """The installed `ser-mcp` script (beside this interpreter), or `python -m mcp_server` without one."""
    script = Path(sys.executable).parent / "ser-mcp"
    if script.is_file():
        return str(script), []
    found = shutil.which("ser-mcp")
    return (found, []) if found else (sys.executable, ["-m", "mcp_server"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/redirect-file"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path.split("/redirect/", 1)[1])
            self.end_headers()
            return
        super().do_GET()


@contextmanager
def file_server(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
