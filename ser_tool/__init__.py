"""ser-tool: speech emotion recognition for LLM agents. Audio in, a structured affect report out.

    >>> from ser_tool import Analyzer
    >>> report = Analyzer().analyze("call.wav")   # the default model; Analyzer("embedded") for the compact one
    >>> print(report.description)

Importing this package is cheap: torch loads when a model does (transformers only for the meralion
and hf backends and Whisper transcription, never for the voice or embedded models), langchain-core only
when `SpeechEmotionTool` is used, pydantic-settings when `Settings` is.
"""

from ser_tool.access import AUDIO_EXTENSIONS, AllowedFolders, OpenedAudio
from ser_tool.align import align
from ser_tool.analyzer import AnalysisOptions, Analyzer, BackendSpec, transcribe_with_emotion
from ser_tool.asr import ASR, GivenTranscript, Transcript, TranscriptSegment, WhisperASR, load_asr
from ser_tool.describe import safe_name, transcript_lines
from ser_tool.audio import SAMPLE_RATE, AudioLimits, load_audio, open_audio
from ser_tool.errors import (
    AccessDeniedError,
    AnalysisCancelled,
    AnalysisTimeLimitError,
    AudioDecodeError,
    AudioError,
    AudioNotFoundError,
    AudioTooLargeError,
    AudioTooLongError,
    BackendError,
    ConfigError,
    EmptyAudioError,
    Hint,
    InvalidAudioError,
    ModelNotAvailableError,
    NoSpeechError,
    SERError,
    TooManyWindowsError,
)
from ser_tool.labels import DIMENSIONS, EMOTIONS
from ser_tool.report import Affect, AffectReport, Dimensions, EmotionProbabilities, Segment, report_json_schema
from ser_tool.report import EmotionTranscript, SpokenSegment
from ser_tool.segment import SegmentationOptions

__version__ = "0.1.0"

__all__ = [
    "ASR", "AUDIO_EXTENSIONS", "DIMENSIONS", "EMOTIONS", "SAMPLE_RATE", "AccessDeniedError", "Affect", "AffectReport",
    "AllowedFolders", "AnalysisCancelled", "AnalysisOptions", "AnalysisTimeLimitError", "Analyzer", "OpenedAudio",
    "TooManyWindowsError",
    "AudioDecodeError", "AudioError", "AudioLimits", "AudioNotFoundError", "AudioTooLargeError",
    "AudioTooLongError", "BackendError", "BackendSpec", "ConfigError", "Dimensions", "EmotionProbabilities",
    "EmptyAudioError", "Hint", "InvalidAudioError", "ModelNotAvailableError", "NoSpeechError", "SERError",
    "Segment", "SegmentationOptions", "Settings", "add_model_flags", "load_audio", "open_audio", "report_json_schema",
    "EmotionTranscript", "GivenTranscript", "SpeechEmotionTool", "SpokenSegment", "Transcript", "TranscriptSegment",
    "WhisperASR", "align", "load_asr", "safe_name", "transcribe_with_emotion", "transcript_lines",
]


def __getattr__(name: str):
    # The LangChain tool needs the optional langchain-core: import it only when asked for.
    if name == "SpeechEmotionTool":
        from ser_tool.langchain_tool import SpeechEmotionTool

        return SpeechEmotionTool
    # Settings (pydantic-settings, ~50 ms to import) are for entry points: loaded when one asks.
    if name in ("Settings", "add_model_flags"):
        from ser_tool import settings

        return getattr(settings, name)
    raise AttributeError(f"module 'ser_tool' has no attribute {name!r}")
