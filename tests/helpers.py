"""What the tests share besides fixtures (those are in the conftest.py of each folder): paths of this
checkout, a hand-made perception for the agent and eval tests, a CP-Bench QA set on synthesised audio,
MCP result checks and a loopback file server, and an analyzer whose worker process dies.

The test doubles of the packages themselves live with them: ser_tool.testing (synthetic voice, FakeBackend,
CountingASR, tiny models, hub sandbox) and agents.testing (ScriptedChatModel, a tiny chat LM).
Import as `from tests.helpers import ...` (tests/ is a package, so any folder's tests can).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import soundfile as sf

from ser_tool import AffectReport, Analyzer, EmotionTranscript, SERError
from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Dimensions, EmotionProbabilities, Segment, SpokenSegment
from ser_tool.analyzer import AnalysisOptions
from ser_tool.testing import SR, FakeBackend, SpectrumSpeakerEncoder, silence, voice

# -- this checkout ----------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "ser_tool" / "samples" / "speech_en.ogg"  # the bundled sample
SHARED_DATA = REPO.parent / "shared" / "data"  # real corpora; tests that need them skip with a reason without


# -- a hand-made perception (no model): a voicemail's affect report and emotion-aware transcript -----------

def affect(emotion: str, p: float, confidence: float, v: float, a: float, d: float) -> Affect:
    probs = [(1 - p) / 6] * 7
    probs[EMOTIONS.index(emotion)] = p
    return Affect(emotion=emotion, confidence=confidence, probabilities=EmotionProbabilities.from_sequence(probs),
                  dimensions=Dimensions(valence=v, arousal=a, dominance=d))


SAD = affect("sad", 0.64, 0.58, 0.22, 0.31, 0.35)
NEUTRAL_UNSURE = affect("neutral", 0.28, 0.16, 0.45, 0.40, 0.50)
OVERALL = affect("sad", 0.52, 0.44, 0.30, 0.34, 0.40)

REPORT = AffectReport(
    source="voicemail.wav", duration=9.0, speech_duration=8.0, sample_rate=16000, backend="embedded",
    model_id="ser-tool/embedded", emotions_supported=list(EMOTIONS), overall=OVERALL,
    timeline=[Segment(start=0.0, end=5.0, speech=True, affect=SAD), Segment(start=5.0, end=6.0, speech=False),
              Segment(start=6.0, end=9.0, speech=True, affect=NEUTRAL_UNSURE)],
    window=10.0, hop=10.0, description="The speaker's voice mainly expresses sadness (52%).",
    warnings=["Only 8.0 s of speech in a noisy recording; treat the readings with care."],
)

TRANSCRIPT = EmotionTranscript(
    source="voicemail.wav", duration=9.0, text="I waited all day for the delivery. It's fine, whatever.",
    language="en", asr_model="given",
    segments=[SpokenSegment(start=0.0, end=4.8, text="I waited all day for the delivery.", affect=SAD, speech_coverage=1.0),
              SpokenSegment(start=6.1, end=8.7, text="It's fine, whatever.", affect=NEUTRAL_UNSURE, speech_coverage=1.0)],
    report=REPORT,
)
QUESTION = "How does the caller feel about the delivery?"


# -- CP-Bench: a tiny QA set on synthesised audio ----------------------------------------------------------

def write_qa(folder: Path, n: int = 4, n_files: int = 1, keys: str = "A") -> Path:
    """A JSONL QA set: n clips x 3 question types, relative audio paths, choices A-D with 'A' correct
    (or the correct letter cycling through `keys`, the option 'right' moved there).
    The clips' audio: one file clip.wav, or n_files files clip0.wav, clip1.wav, ... used in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["clip.wav"] if n_files == 1 else [f"clip{k}.wav" for k in range(n_files)]
    for k, name in enumerate(names):
        sf.write(folder / name, voice(1.0, f0=140 + 20 * k), SR)
    types = ("content", "direct_paralinguistic", "contextual_paralinguistic")
    rows = []
    for i in range(n):
        for t in types:
            key = keys[len(rows) % len(keys)]
            choices = ["wrong one", "wrong two", "wrong three"]
            choices.insert("ABCD".index(key), "right")
            rows.append({"id": f"s{i}-{t}", "audio": names[i % len(names)], "question": f"Question {i} about {t}?",
                         "reference": f"ref {i}", "question_type": t, "transcript": "Kids are talking by the door",
                         "oracle_emotion": "happy", "choices": choices, "correct_choice": key})
    path = folder / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- ser batch: a worker that dies --------------------------------------------------------------------------
# Worker processes unpickle these by reference: spawned workers inherit sys.path (the repository root under
# pytest), Ray's get it through PYTHONPATH.

class CrashingAnalyzer(Analyzer):
    """The fake loudness model; the worker process dies outright on any file whose name starts with 'crash'."""

    def analyze(self, audio, **kwargs):
        if os.path.basename(str(audio)).startswith("crash"):
            os._exit(1)  # what a segfault in a decoder or the out-of-memory killer looks like from outside
        return super().analyze(audio, **kwargs)


@dataclass(frozen=True)
class CrashingFactory:
    def __call__(self) -> Analyzer:
        return CrashingAnalyzer(FakeBackend())


class StuckAnalyzer(Analyzer):
    """The fake loudness model; on a file whose name starts with 'stuck' the worker sleeps for ten minutes."""

    def analyze(self, audio, **kwargs):
        if os.path.basename(str(audio)).startswith("stuck"):
            time.sleep(600)  # a very long recording, or a decoder that hangs
        return super().analyze(audio, **kwargs)


@dataclass(frozen=True)
class StuckFactory:
    def __call__(self) -> Analyzer:
        return StuckAnalyzer(FakeBackend())


@dataclass(frozen=True)
class SpeakerFactory:
    """The fake loudness model with speaker attribution by the weightless stand-in speaker encoder (in each worker)."""

    options: AnalysisOptions

    def __call__(self) -> Analyzer:
        SpectrumSpeakerEncoder().install()
        return Analyzer(FakeBackend(), self.options)


# -- MCP: a real backend to run (embedded when shipped, else a tiny random hf model), audio fixtures on disk,
# result checks against the published schemas, the ser-mcp command, and a loopback file server ------------

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
