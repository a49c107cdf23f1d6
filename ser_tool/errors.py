"""One small error hierarchy. Every message says what went wrong and what to do about it.

A message names no surface's flags or variables. Where a setting would get the caller past the error,
the error carries it as a `Hint` (a setting name, and a value to try when there is one), and each
surface words it for its readers: the CLI as its flag and SER_* variable (`--vad energy / SER_VAD=energy`),
the MCP server as a call argument when the caller can change it per call (`call again with vad='energy'`)
or else as the server's SER_* variable, the LangChain tool as its own option. `str(e)` words it for
Python callers (`vad='energy'`).

Surfaces translate these: the CLI into a message and an exit code (`ser_tool.console`: exit codes live
there, not here), MCP into an error result, LangChain into ToolException. Anything that is not an
SERError is a bug.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "AccessDeniedError", "AnalysisCancelled", "AnalysisTimeLimitError", "AudioDecodeError", "AudioError",
    "AudioNotFoundError", "AudioTooLargeError", "AudioTooLongError", "BackendError", "ConfigError", "EmptyAudioError",
    "Hint", "InvalidAudioError", "ModelNotAvailableError", "NoSpeechError", "SERError", "TooManyWindowsError", "Wording",
    "python_words",
]


@dataclass(frozen=True)
class Hint:
    """A setting the caller can change to get past an error, for each surface to word in its own terms.

    setting: a `Settings` field name ('max_duration', 'max_file_mb', 'vad', 'device', 'backend', 'model',
    'label_map', 'trust_remote_code', 'offline', 'window', 'hop') or one of the file policy's
    ('allowed_dirs', 'max_inline_mb', 'max_batch_files', 'allow_hardlinks'); or 'folder': analyse a
    folder's files rather than the folder (a call argument where a surface has one; else nothing to add).
    value: the value to try ('energy', 'cpu', True), or None when the caller has to pick one.
    """

    setting: str
    value: str | bool | None = None


# How a surface words a hint: the phrase added in parentheses after the message, or None to add nothing.
Wording = Callable[[Hint], "str | None"]


def python_words(hint: Hint) -> str | None:
    """A hint for Python callers: the setting's name (the same in Settings, AudioLimits, SegmentationOptions
    and BackendSpec, where those have it)."""
    if hint.setting == "folder":
        return None
    return f"the {hint.setting} setting" if hint.value is None else f"{hint.setting}={hint.value!r}"


class SERError(Exception):
    """Base class for every error this package raises on purpose.

    message: what went wrong and what to do, in no surface's words. setting / value: the `Hint` (see
    there), when changing a setting is a way out; `hints` for more than one. The message ends where a
    surface adds them.
    """

    def __init__(self, message: str, *, setting: str | None = None, value: str | bool | None = None,
                 hints: Sequence[Hint] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hints: tuple[Hint, ...] = ((Hint(setting, value),) if setting is not None else ()) + tuple(hints)

    def worded(self, words: Wording = python_words) -> str:
        """The message with its hints, if any, in a surface's words (added in parentheses)."""
        phrases = [p for p in map(words, self.hints) if p]
        return f"{self.message} ({'; '.join(phrases)})" if phrases else self.message

    def __str__(self) -> str:
        return self.worded()

    def __reduce__(self):  # pickling (e.g. across processes) keeps the hints
        return type(self), (self.message,), {"hints": self.hints}


class AudioError(SERError):
    """The audio could not be used."""


class AudioNotFoundError(AudioError):
    """The path does not exist (or is not a regular file)."""


class AudioDecodeError(AudioError):
    """The bytes are not audio in a format we can decode."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class InvalidAudioError(AudioError):
    """The samples are unusable (NaN/inf, wrong shape or type)."""


class AudioTooLongError(AudioError):
    """The recording is longer than the configured limit."""


class AudioTooLargeError(AudioError):
    """The file is larger than the configured limit."""


class NoSpeechError(AudioError):
    """No speech was found anywhere in the recording."""


class AccessDeniedError(SERError):
    """The request asks for something the configured policy does not allow (a path outside the allowed
    folders, a file with other names, a URL when URLs are off)."""


class ModelNotAvailableError(SERError):
    """The model could not be found or loaded (not downloaded, not bundled, gated, offline)."""


class BackendError(SERError):
    """The model failed while running, or returned something unusable."""


class ConfigError(SERError):
    """A setting or argument is invalid."""


class TooManyWindowsError(AudioError):
    """Analysing this recording with this window and hop would take more windows than one call may run."""


class AnalysisCancelled(SERError):
    """The caller cancelled the analysis before it finished (named so it does not clash with asyncio's
    CancelledError)."""


class AnalysisTimeLimitError(SERError):
    """The analysis ran past its time limit and was stopped."""
