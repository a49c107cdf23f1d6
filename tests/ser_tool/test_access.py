"""AllowedFolders: the one allowed-folders policy (MCP server and LangChain tool). No model: fast.

Moved here from the MCP sandbox's tests when the rules moved into the core; the MCP wording of the
same refusals (SER_* hints) stays in test_mcp_sandbox.py.
"""

import base64
import os
import stat

import pytest

from ser_tool import (
    AccessDeniedError,
    AllowedFolders,
    AudioDecodeError,
    AudioNotFoundError,
    AudioTooLargeError,
    ConfigError,
    EmptyAudioError,
)


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


def make(allowed, **kw) -> AllowedFolders:
    return AllowedFolders(folders=(allowed,), **kw)


def opens(box: AllowedFolders, user_path: str, expected) -> bool:
    """Whether open_file(user_path) opened the file `expected` (compared on the open descriptor)."""
    with box.open_file(user_path) as opened:
        assert opened.name == user_path.strip() and opened.file.tell() == 0
        return os.path.samestat(os.fstat(opened.file.fileno()), os.stat(expected))


def test_files_inside_the_allowed_folder_open(layout):
    allowed, _ = layout
    box = make(allowed)
    assert opens(box, "a.wav", allowed / "a.wav")
    assert opens(box, str(allowed / "sub" / "b.flac"), allowed / "sub" / "b.flac")
    assert opens(box, "sub/b.flac", allowed / "sub" / "b.flac")
    assert opens(box, "inner_link.wav", allowed / "a.wav")  # a link that stays inside is fine
    with box.open_file(" a.wav ") as opened:
        assert opened.file.read() == b"RIFF...." and opened.size == 8 and opened.name == "a.wav"
    assert opened.file.closed  # the context manager releases the descriptor


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
        make(allowed).open_file(path)


def test_absolute_paths_outside_are_refused(layout):
    allowed, outside = layout
    box = make(allowed)
    for path in (str(outside / "secret.wav"), "/etc/passwd", "/dev/zero"):
        with pytest.raises(AccessDeniedError, match="outside the allowed folders"):
            box.open_file(path)


def test_absolute_symlink_escape_is_refused(layout):
    allowed, _ = layout
    with pytest.raises(AccessDeniedError, match="symbolic link"):
        make(allowed).open_file(str(allowed / "escape.wav"))


def test_fifos_and_devices_are_not_opened(layout):
    allowed, _ = layout
    os.mkfifo(allowed / "pipe.wav")
    box = make(allowed)
    with pytest.raises(AccessDeniedError, match="not a regular file"):
        box.open_file("pipe.wav")  # must not block on open either
    (allowed / "null.wav").symlink_to("/dev/null")
    with pytest.raises(AccessDeniedError):
        box.open_file("null.wav")
    try:
        os.mknod(allowed / "dev.wav", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        return  # not root: the FIFO case covers the check
    with pytest.raises(AccessDeniedError, match="not a regular file"):
        box.open_file("dev.wav")


def test_file_size_limit_is_checked_before_decoding(layout):
    allowed, _ = layout
    (allowed / "big.wav").write_bytes(b"\0" * 2048)
    with pytest.raises(AudioTooLargeError, match="files up to"):
        make(allowed, max_file_bytes=1024).open_file("big.wav")


def test_no_allowed_folders_means_no_file_access(layout):
    allowed, _ = layout
    with pytest.raises(AccessDeniedError, match="disabled"):
        AllowedFolders().open_file(str(allowed / "a.wav"))


def test_relative_paths_are_looked_up_in_every_allowed_folder(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (two / "x.wav").write_bytes(b"RIFF")
    box = AllowedFolders(folders=(one, two))
    assert opens(box, "x.wav", two / "x.wav")


def test_messages_show_the_folders_as_configured_never_their_real_location(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real, target_is_directory=True)
    box = AllowedFolders(folders=(tmp_path / "via",))
    with pytest.raises(AudioNotFoundError) as e:
        box.open_file("missing.wav")
    assert str(tmp_path / "via") in str(e.value) and str(real) not in str(e.value)
    # and no message speaks a surface's language (flags, variables): each surface words the hints
    assert "--" not in str(e.value) and "SER_" not in str(e.value)


def test_folder_listing(layout):
    allowed, _ = layout
    box = make(allowed)
    names = box.list_folder(str(allowed))
    # audio extensions only; escape.wav (a link to a file outside) is left out since finding 5
    assert [os.path.basename(n) for n in names] == ["a.wav", "inner_link.wav"]
    assert box.list_folder("sub") == ["sub/b.flac"]
    assert box.list_folder(".", "**/*.flac") == ["sub/b.flac"]
    with pytest.raises(ConfigError, match="without '..'"):
        box.list_folder(".", "../outside/*")
    with pytest.raises(AccessDeniedError):
        box.list_folder("escape_dir")
    with pytest.raises(AccessDeniedError, match="at most 1"):
        make(allowed, max_batch_files=1).list_folder(".")


def test_base64(tmp_path):
    box = AllowedFolders(max_inline_bytes=1000)
    data = os.urandom(600)
    text = base64.b64encode(data).decode()
    assert box.decode_base64(text) == data
    assert box.decode_base64("data:audio/wav;base64," + text[:40] + "\n" + text[40:]) == data
    assert box.decode_base64(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
    with pytest.raises(AudioTooLargeError, match="the limit is 0.0 MiB"):
        box.decode_base64(base64.b64encode(os.urandom(2000)).decode())
    with pytest.raises(AudioDecodeError, match="not valid base64"):
        box.decode_base64("this is not base64!")
    with pytest.raises(EmptyAudioError):
        box.decode_base64("   ")


def test_without_folders_any_local_file_opens_but_types_and_sizes_are_still_checked(layout, monkeypatch):
    """folders=None: the LangChain tool's unrestricted default (a local library call, no sandbox)."""
    allowed, outside = layout
    box = AllowedFolders(folders=None, max_file_bytes=100)
    monkeypatch.chdir(allowed)
    assert opens(box, "a.wav", allowed / "a.wav")  # relative to the working directory
    assert opens(box, "escape.wav", outside / "secret.wav")  # links lead anywhere
    assert opens(box, "../outside/secret.wav", outside / "secret.wav")
    os.link(outside / "secret.wav", allowed / "hard.wav")
    assert opens(box, "hard.wav", outside / "secret.wav")  # no boundary, so nothing to check links against
    os.mkfifo(allowed / "pipe.wav")
    with pytest.raises(AccessDeniedError, match="not a regular file"):
        box.open_file("pipe.wav")
    with pytest.raises(AudioNotFoundError, match="no such file"):
        box.open_file("missing.wav")
    (allowed / "big.wav").write_bytes(b"\0" * 200)
    with pytest.raises(AudioTooLargeError):
        box.open_file("big.wav")


def test_policy_limits_must_be_positive():
    with pytest.raises(ConfigError, match="max_file_bytes"):
        AllowedFolders(max_file_bytes=0)


def test_opened_files_decode_like_their_paths(tmp_path):
    """open_audio reads the open file object (libsndfile; the ffmpeg fallback gets its bytes)."""
    import numpy as np
    import soundfile as sf

    from ser_tool import AudioDecodeError as DecodeError
    from ser_tool import open_audio

    sf.write(tmp_path / "tone.wav", np.sin(np.arange(8000) / 5).astype(np.float32) * 0.1, 8000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF not audio at all" * 10)
    box = AllowedFolders(folders=(tmp_path,))
    with box.open_file("tone.wav") as opened, open_audio(opened.file, name=opened.name) as src:
        from_file = src.read(0, src.num_samples)
        assert src.name == "tone.wav"
    with open_audio(tmp_path / "tone.wav") as src:
        assert np.array_equal(src.read(0, src.num_samples), from_file)
    with box.open_file("junk.wav") as opened, pytest.raises(DecodeError, match="junk.wav"):
        open_audio(opened.file, name=opened.name)


def test_one_folder_may_be_given_as_a_path(layout):
    allowed, _ = layout
    assert AllowedFolders(folders=str(allowed)).folders == (allowed,)
    assert AllowedFolders(folders=allowed).folders == (allowed,)
