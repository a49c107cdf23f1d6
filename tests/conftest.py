"""Fixtures for every folder of tests: the fake model, tiny models saved once per session, audio on disk,
and a clean environment. Each folder's own fixtures are in its conftest.py; what tests import besides
fixtures is in tests/helpers.py, ser_tool.testing and agents.testing."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.helpers")  # its checks report like the tests' own asserts

from ser_tool.testing import FakeBackend  # noqa: E402


@pytest.fixture(autouse=True)
def no_offline_asr(monkeypatch):
    """Tests behave the same whether or not the [asr] extra is installed: no entry point falls back to the
    offline Whisper (tests/ser_tool/test_offline_asr.py opts back in)."""
    monkeypatch.setattr("ser_tool.asr.offline_asr_installed", lambda *a, **k: False)


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def anyio_backend():
    """Async tests (MCP) run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """A folder of small audio files in several formats (the MCP tests' allowed folder)."""
    from tests.helpers import write_audio_fixtures

    folder = tmp_path_factory.mktemp("allowed")
    write_audio_fixtures(folder)
    return folder


@pytest.fixture
def one_thread():
    """Run torch single-threaded for the test, then restore the process's thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> str:
    """A tiny random hf audio classifier saved to disk (loads offline through the real loader)."""
    from ser_tool.testing import make_tiny_hf_classifier

    return str(make_tiny_hf_classifier(tmp_path_factory.mktemp("tiny_hf")))


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    """A tiny random Whisper speech recogniser saved to disk (loads through the real pipeline path)."""
    from ser_tool.testing import make_tiny_whisper_asr

    return make_tiny_whisper_asr(tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture
def no_ser_env(monkeypatch):
    """Entry-point tests: a developer's own SER_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("SER_"):
            monkeypatch.delenv(name)
