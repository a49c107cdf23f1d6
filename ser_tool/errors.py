"""One small error hierarchy. Every message says what went wrong and what to do about it.

Surfaces translate these: the CLI into an exit code and a message, MCP into an error result,
LangChain into ToolException. Anything that is not an SERError is a bug.
"""

from __future__ import annotations


class SERError(Exception):
    """Base class for every error this package raises on purpose."""

    exit_code = 1


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

    exit_code = 3


class BackendError(SERError):
    """The model failed while running, or returned something unusable."""

    exit_code = 3


class ConfigError(SERError):
    """A setting or argument is invalid."""

    exit_code = 2


class TooManyWindowsError(AudioError):
    """Analysing this recording with this window and hop would take more windows than one call may run."""


class AnalysisCancelled(SERError):
    """The caller cancelled the analysis before it finished (named so it does not clash with asyncio's
    CancelledError)."""


class AnalysisTimeLimitError(SERError):
    """The analysis ran past its time limit and was stopped."""
