"""Fixtures for the ser_tool tests: the bundled sample and a hub sandbox for the hub-loading backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SAMPLE


@pytest.fixture
def sample_path() -> Path:
    assert SAMPLE.is_file(), "the bundled sample is missing from the repository"
    return SAMPLE


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """No hub for the test (ser_tool.testing.hub_sandbox): offline, an empty hub cache, sockets refused;
    what transformers asked the hub for is in the yielded sandbox's `hub_lookups`."""
    pytest.importorskip("transformers")
    from ser_tool.testing import hub_sandbox

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for anything that reads the environment late
    with hub_sandbox(tmp_path / "hf-sandbox") as sandbox:
        yield sandbox
