"""Helpers for the batch tests that worker processes import (spawned workers find this folder on sys.path)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from conftest import FakeBackend
from ser_tool.analyzer import AnalysisOptions, Analyzer
from ser_tool.testing import SpectrumSpeakerEncoder


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


@dataclass(frozen=True)
class SpeakerFactory:
    """The fake loudness model with speaker attribution by the weightless stand-in speaker encoder (in each worker)."""

    options: AnalysisOptions

    def __call__(self) -> Analyzer:
        SpectrumSpeakerEncoder().install()
        return Analyzer(FakeBackend(), self.options)
