"""The sandbox: what a tool call may read. No model, no MCP session: fast."""

import base64
import os
import stat

import pytest

from mcp_server.sandbox import AccessDeniedError, FetchError, Sandbox, SandboxPolicy, validate_one_source
from mcp_server.settings import ServerSettings
from mcp_support import file_server
from ser_tool import AudioDecodeError, AudioNotFoundError, AudioTooLargeError, ConfigError, EmptyAudioError


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def layout(tmp_path):
    """allowed/ (a.wav, sub/b.flac, notes.txt), outside/secret.wav, and links from allowed/ to outside."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    (allowed / "a.wav").write_bytes(b"RIFF....")
    (allowed / "sub" / "b.flac").write_bytes(b"fLaC....")
    (allowed / "notes.txt").write_text("not audio")
    (outside / "secret.wav").write_bytes(b"RIFF....")
    (allowed / "escape.wav").symlink_to(outside / "secret.wav")
    (allowed / "escape_dir").symlink_to(outside, target_is_directory=True)
    (allowed / "inner_link.wav").symlink_to(allowed / "a.wav")
    return allowed, outside


def make(allowed, **kw) -> Sandbox:
    return Sandbox(SandboxPolicy(allowed_dirs=(allowed,), **kw))


def test_files_inside_the_allowed_folder_resolve(layout):
    allowed, _ = layout
    box = make(allowed)
    assert box.resolve_file("a.wav") == (allowed / "a.wav").resolve()
    assert box.resolve_file(str(allowed / "sub" / "b.flac")) == (allowed / "sub" / "b.flac").resolve()
    assert box.resolve_file("sub/b.flac") == (allowed / "sub" / "b.flac").resolve()
    assert box.resolve_file("inner_link.wav") == (allowed / "a.wav").resolve()  # a link that stays inside is fine


@pytest.mark.parametrize("path, error, words", [
    ("../outside/secret.wav", AccessDeniedError, "'..' is not allowed"),
    ("sub/../../outside/secret.wav", AccessDeniedError, "'..' is not allowed"),
    ("escape.wav", AccessDeniedError, "symbolic link"),
    ("escape_dir/secret.wav", AccessDeniedError, "symbolic link"),
    ("missing.wav", AudioNotFoundError, "no such file"),
    ("sub", AudioNotFoundError, "is a folder"),
    ("", AccessDeniedError, "empty"),
    ("a.wav\x00.txt", AccessDeniedError, "NUL"),
])
def test_bad_paths_are_refused_with_a_reason(layout, path, error, words):
    allowed, _ = layout
    with pytest.raises(error, match=words):
        make(allowed).resolve_file(path)


def test_absolute_paths_outside_are_refused(layout):
    allowed, outside = layout
    box = make(allowed)
    for path in (str(outside / "secret.wav"), "/etc/passwd", "/dev/zero"):
        with pytest.raises(AccessDeniedError, match="outside the allowed folders"):
            box.resolve_file(path)


def test_absolute_symlink_escape_is_refused(layout):
    allowed, _ = layout
    with pytest.raises(AccessDeniedError, match="symbolic link"):
        make(allowed).resolve_file(str(allowed / "escape.wav"))


def test_fifos_and_devices_are_not_opened(layout):
    allowed, _ = layout
    os.mkfifo(allowed / "pipe.wav")
    box = make(allowed)
    with pytest.raises(AccessDeniedError, match="not a regular file"):
        box.resolve_file("pipe.wav")  # must not block on open either
    (allowed / "null.wav").symlink_to("/dev/null")
    with pytest.raises(AccessDeniedError):
        box.resolve_file("null.wav")
    try:
        os.mknod(allowed / "dev.wav", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        return  # not root: the FIFO case covers the check
    with pytest.raises(AccessDeniedError, match="not a regular file"):
        box.resolve_file("dev.wav")


def test_file_size_limit_is_checked_before_decoding(layout):
    allowed, _ = layout
    (allowed / "big.wav").write_bytes(b"\0" * 2048)
    with pytest.raises(AudioTooLargeError, match="SER_MAX_FILE_MB"):
        make(allowed, max_file_bytes=1024).resolve_file("big.wav")


def test_no_allowed_folders_means_no_file_access(layout):
    allowed, _ = layout
    with pytest.raises(AccessDeniedError, match="SER_ALLOWED_DIRS"):
        Sandbox(SandboxPolicy()).resolve_file(str(allowed / "a.wav"))


def test_relative_paths_are_looked_up_in_every_allowed_folder(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (two / "x.wav").write_bytes(b"RIFF")
    box = Sandbox(SandboxPolicy(allowed_dirs=(one, two)))
    assert box.resolve_file("x.wav") == (two / "x.wav").resolve()


def test_folder_listing(layout):
    allowed, _ = layout
    box = make(allowed)
    names = box.list_folder(str(allowed))
    assert [os.path.basename(n) for n in names] == ["a.wav", "escape.wav", "inner_link.wav"]  # audio extensions only
    assert box.list_folder("sub") == ["sub/b.flac"]
    assert box.list_folder(".", "**/*.flac") == ["sub/b.flac"]
    with pytest.raises(ConfigError, match="without '..'"):
        box.list_folder(".", "../outside/*")
    with pytest.raises(AccessDeniedError):
        box.list_folder("escape_dir")
    with pytest.raises(AccessDeniedError, match="at most 1"):
        make(allowed, max_batch_files=1).list_folder(".")


def test_base64(tmp_path):
    box = Sandbox(SandboxPolicy(max_inline_bytes=1000))
    data = os.urandom(600)
    text = base64.b64encode(data).decode()
    assert box.decode_base64(text) == data
    assert box.decode_base64("data:audio/wav;base64," + text[:40] + "\n" + text[40:]) == data
    assert box.decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
    with pytest.raises(AudioTooLargeError, match="SER_MAX_INLINE_MB"):
        box.decode_base64(base64.b64encode(os.urandom(2000)).decode())
    with pytest.raises(AudioDecodeError, match="not valid base64"):
        box.decode_base64("this is not base64!")
    with pytest.raises(EmptyAudioError):
        box.decode_base64("   ")


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
    assert list(specs) == ["embedded", "hf", "meralion"] and specs["hf"].model == "/models/x"
    assert s.sandbox_policy().allowed_dirs == (tmp_path, tmp_path / "b")
    with pytest.raises(ConfigError, match="twice"):
        ServerSettings(extra_backends="embedded").backend_specs()
