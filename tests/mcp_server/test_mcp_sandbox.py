"""The MCP sandbox: URLs, one source per call, and the shared file policy worded for the server. No model, no MCP session: fast."""

import base64
import os

import pytest

from mcp_server.messages import tool_message
from mcp_server.sandbox import AccessDeniedError, FetchError, Sandbox, SandboxPolicy, validate_one_source
from mcp_server.settings import ServerSettings
from ser_tool import AllowedFolders, AudioDecodeError, AudioNotFoundError, AudioTooLargeError, ConfigError, EmptyAudioError
from tests.helpers import file_server


@pytest.fixture
def allowed(tmp_path):
    folder = tmp_path / "allowed"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"RIFF....")
    return folder


def make(allowed, **kw) -> Sandbox:
    return Sandbox(SandboxPolicy(allowed_dirs=(allowed,), **kw))


# The path rules themselves are ser_tool.AllowedFolders' (tests/ser_tool/test_access.py); here: that the server
# applies them, and words the settings a user would change in its own terms (mcp_server.messages: the
# refusal carries the setting, the server's message names its variable).

def test_the_sandbox_applies_the_shared_allowed_folders_policy(allowed):
    box = make(allowed, max_file_bytes=1024, max_inline_bytes=1000, max_batch_files=7, allow_hardlinks=True)
    assert isinstance(box.files, AllowedFolders)
    assert (box.files.folders, box.files.max_file_bytes, box.files.max_inline_bytes, box.files.max_batch_files,
            box.files.allow_hardlinks) == ((allowed,), 1024, 1000, 7, True)
    with box.files.open_file("a.wav") as opened:
        assert opened.file.read() == b"RIFF...."


def test_file_size_limit_names_the_setting(allowed):
    (allowed / "big.wav").write_bytes(b"\0" * 2048)
    with pytest.raises(AudioTooLargeError) as info:
        make(allowed, max_file_bytes=1024).files.open_file("big.wav")
    assert "SER_MAX_FILE_MB" in tool_message(info.value, "analyze_speech_emotion")


def test_no_allowed_folders_means_no_file_access(allowed):
    with pytest.raises(AccessDeniedError) as info:
        Sandbox(SandboxPolicy()).files.open_file(str(allowed / "a.wav"))
    assert "SER_ALLOWED_DIRS" in tool_message(info.value, "analyze_speech_emotion")


def test_folder_as_file_points_to_the_batch_tool(allowed):
    (allowed / "sub").mkdir()
    with pytest.raises(AudioNotFoundError) as info:
        make(allowed).files.open_file("sub")
    assert "analyze_speech_emotion_batch" in tool_message(info.value, "analyze_speech_emotion")


def test_base64_limit_names_the_setting(tmp_path):
    box = Sandbox(SandboxPolicy(max_inline_bytes=1000))
    data = os.urandom(600)
    assert box.files.decode_base64(base64.b64encode(data).decode()) == data
    with pytest.raises(AudioTooLargeError) as info:
        box.files.decode_base64(base64.b64encode(os.urandom(2000)).decode())
    assert "SER_MAX_INLINE_MB" in tool_message(info.value, "analyze_speech_emotion")
    with pytest.raises(AudioDecodeError, match="not valid base64"):
        box.files.decode_base64("this is not base64!")
    with pytest.raises(EmptyAudioError):
        box.files.decode_base64("   ")


def test_exactly_one_source():
    assert validate_one_source(path="a.wav", url=None, audio_base64=None) == "path"
    with pytest.raises(ConfigError, match="got none"):
        validate_one_source(path=None, url="", audio_base64=None)
    with pytest.raises(ConfigError, match="got path and url"):
        validate_one_source(path="a.wav", url="http://x/a.wav", audio_base64=None)


@pytest.mark.anyio
async def test_urls_are_off_by_default_and_only_http(tmp_path):
    with pytest.raises(AccessDeniedError, match="disabled"):
        await Sandbox(SandboxPolicy()).fetch_url("https://example.org/a.wav")
    box = Sandbox(SandboxPolicy(allow_urls=True))
    for url in ("file:///etc/passwd", "ftp://example.org/a.wav", "/etc/passwd", "gopher://x"):
        with pytest.raises(AccessDeniedError, match="only http"):
            await box.fetch_url(url)
    with file_server(tmp_path) as base:  # loopback is refused unless private addresses are allowed
        with pytest.raises(AccessDeniedError, match="non-public address"):
            await box.fetch_url(base + "/a.wav")


@pytest.mark.anyio
async def test_url_fetch_from_loopback_with_caps(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x" * 500)
    (tmp_path / "big.wav").write_bytes(b"x" * 5000)
    box = Sandbox(SandboxPolicy(allow_urls=True, url_allow_private=True, max_download_bytes=1000, url_timeout=10))
    with file_server(tmp_path) as base:
        data, shown = await box.fetch_url(base + "/a.wav?token=secret")
        assert data == b"x" * 500 and "secret" not in shown
        assert (await box.fetch_url(base + "/redirect/a.wav"))[0] == data
        with pytest.raises(AudioTooLargeError, match="SER_MAX_DOWNLOAD_MB"):
            await box.fetch_url(base + "/big.wav")
        with pytest.raises(FetchError, match="HTTP 404"):
            await box.fetch_url(base + "/missing.wav")
        with pytest.raises(AccessDeniedError, match="only http"):
            await box.fetch_url(base + "/redirect-file")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_ALLOWED_DIRS", f"{tmp_path}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("SER_ALLOW_URLS", "1")
    monkeypatch.setenv("SER_EXTRA_BACKENDS", "hf=/models/x, meralion")
    s = ServerSettings()
    assert s.allowed_dirs == [tmp_path, tmp_path / "b"] and s.allow_urls
    specs = s.backend_specs()
    assert list(specs) == ["voice", "hf", "meralion"] and specs["hf"].model == "/models/x"
    assert s.sandbox_policy().allowed_dirs == (tmp_path, tmp_path / "b")
    assert s.sandbox_policy().allow_hardlinks is False
    monkeypatch.setenv("SER_ALLOW_HARDLINKS", "1")
    assert ServerSettings().sandbox_policy().allowed_folders().allow_hardlinks is True
    with pytest.raises(ConfigError, match="twice"):
        ServerSettings(extra_backends="voice").backend_specs()
