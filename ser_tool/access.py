"""Which local audio a caller may read, and reading it safely: one policy for every surface.

`AllowedFolders` is the allowed-folders rule the MCP server and the LangChain tool share:

- a relative path is looked up in each allowed folder in turn (the first that has it wins); an
  absolute path must lie inside one; '..' and NUL characters are refused;
- symbolic links are followed, but only to files whose real location is inside an allowed folder;
- only regular files are opened (no folders, devices, FIFOs, sockets), within a size cap, and by
  default only files with a single name (a hard link may be a second name of a file outside);
- the file is opened once and handed on as an open file object (`OpenedAudio`), so what is decoded
  is exactly what was checked. The open refuses any symbolic link met on the way (the path was
  resolved just before), beneath a descriptor of the allowed folder (`openat2` with RESOLVE_BENEATH
  on Linux, else one `openat(O_NOFOLLOW)` per component); the descriptor is then checked again
  (type, links, size and, where the system tells, its real path). Swapping a folder for a link
  between the check and the open makes the call fail, never read the outside file.

Base64 audio is decoded here too (size checked before decoding), so every surface accepts the same
text. Messages name no surface's flags or variables: a refusal that a setting would lift carries it as
a hint (`ser_tool.errors.Hint`: 'allowed_dirs', 'max_file_mb', 'max_inline_mb', 'max_batch_files',
'allow_hardlinks', or 'folder' for a folder given as a file), and each surface words it for its users.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fnmatch
import functools
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from ser_tool.errors import (
    AccessDeniedError,
    AudioDecodeError,
    AudioError,
    AudioNotFoundError,
    AudioTooLargeError,
    ConfigError,
    EmptyAudioError,
)

__all__ = ["AUDIO_EXTENSIONS", "AllowedFolders", "OpenedAudio"]

MiB = 2**20

# What a folder listing picks up when no pattern is given (libsndfile's formats plus ffmpeg's usual ones).
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf",
    ".m4a", ".aac", ".webm", ".wma", ".amr", ".mp4",
})

# Never block (a FIFO), never acquire a terminal, never leak into child processes (ffmpeg).
_O_FILE = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
           | getattr(os, "O_BINARY", 0))
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# Walking through a folder needs no read permission with O_PATH (Linux); elsewhere read-only.
_O_SEARCH = (getattr(os, "O_PATH", 0) or os.O_RDONLY) | _O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
# The path changed between resolving and opening it (a link appeared, a folder moved): try again.
_CHANGED = {errno.ELOOP, errno.EXDEV, errno.ENOTDIR, errno.ENOENT, errno.EAGAIN, errno.EMLINK}
_ATTEMPTS = 3


@dataclass
class OpenedAudio:
    """An audio file opened for reading (binary, seekable, at offset 0) and the name to show for it.

    Use as a context manager, or call close(): the descriptor is the caller's to release.
    """

    file: BinaryIO
    name: str
    size: int

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> OpenedAudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class AllowedFolders:
    """The local files a caller may read, and the caps on what it may send.

    folders: the allowed folders; empty: reading files is off; None: any file this process can read
    (for a local library user, not a sandbox: relative paths start from the working directory, links
    lead anywhere, hard links are not checked). Folders are resolved (links followed) on each call.
    max_file_bytes: largest file opened. max_inline_bytes: largest base64 payload (decoded).
    max_batch_files: most files one folder listing returns.
    allow_hardlinks: open files that have more than one name (off: such a file may be a second name
    of a file outside the allowed folders, which no path check can see).
    """

    folders: tuple[Path, ...] | None = ()
    max_file_bytes: int = 1024 * MiB
    max_inline_bytes: int = 10 * MiB
    max_batch_files: int = 50
    allow_hardlinks: bool = False

    def __post_init__(self) -> None:
        if self.folders is not None:
            folders = (self.folders,) if isinstance(self.folders, (str, os.PathLike)) else self.folders
            object.__setattr__(self, "folders", tuple(Path(d) for d in folders))
        for name in ("max_file_bytes", "max_inline_bytes", "max_batch_files"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def restricted(self) -> bool:
        return self.folders is not None

    # -- files -----------------------------------------------------------------------------------

    def open_file(self, user_path: str) -> OpenedAudio:
        """Open a regular file the policy allows, once; decode from the returned object, never by name again."""
        text = _path_text(user_path)
        if not self.restricted:
            return self._open_anywhere(text)
        for _ in range(_ATTEMPTS):
            try:
                real, root = self._locate(text)
                st = _stat(real, text)
                self._check_stat(st, text)
                return self._verified(_open_beneath(root, real), text, st)
            except _Changed:
                continue  # replaced while we looked: resolve again from scratch
            except OSError as e:
                if e.errno in _CHANGED:
                    continue
                raise _open_error(e, text) from None
        raise AccessDeniedError(
            f"{text}: the path kept changing while it was being opened (a folder or link on the way was replaced); "
            "try again when the files are in place"
        )

    def list_folder(self, user_folder: str, pattern: str | None = None) -> list[str]:
        """Paths (as the caller would write them, for open_file) of the audio files in an allowed folder.

        pattern: a glob relative to the folder ('*.wav', '**/*.flac'); without one, every file with
        an audio extension directly in the folder. Matches whose real location is outside the allowed
        folders are left out without a word, and links to folders outside are not entered.
        """
        text = _path_text(user_folder)
        if pattern is not None:
            p = PurePath(pattern)
            if not pattern.strip() or p.is_absolute() or ".." in p.parts or "\x00" in pattern:
                raise ConfigError(f"pattern {pattern!r} must be a glob inside the folder (e.g. '*.wav' or '**/*.flac'), without '..'")
        if self.restricted:
            try:
                real, _ = self._locate(text)
            except _Changed:
                raise AccessDeniedError(f"{text}: the path changed while it was being looked up; try again") from None
        else:
            real = Path(os.path.abspath(os.path.expanduser(text)))
        st = _stat(real, text)
        if not stat.S_ISDIR(st.st_mode):
            raise AudioNotFoundError(f"{text} is not a folder; pass it as a file path instead")
        roots = self._roots() if self.restricted else None
        parts = PurePath(pattern).parts if pattern else ("*",)
        out = []
        for rel in sorted(set(_glob(str(real), parts, roots)), key=lambda r: PurePath(r).parts):
            full = os.path.join(real, rel)
            if pattern is None and PurePath(rel).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if roots is not None and _root_of(_realpath(full), roots) is None:
                continue  # leads outside: not listed, not named
            try:
                if stat.S_ISDIR(os.stat(full).st_mode):
                    continue
            except OSError:
                continue  # a dangling link
            out.append(str(PurePath(text) / rel))
        if len(out) > self.max_batch_files:
            raise AccessDeniedError(
                f"{text} has {len(out)} matching files; one call analyses at most {self.max_batch_files}. Narrow the "
                "pattern (e.g. 'call_2024*.wav') or pass a list of paths, in several calls; or raise the limit",
                setting="max_batch_files",
            )
        return out

    # -- inline audio ----------------------------------------------------------------------------

    def decode_base64(self, text: str) -> bytes:
        """Bytes of an audio file sent as base64 (a `data:` URI prefix, line breaks and URL-safe letters are tolerated)."""
        s = "".join((text or "").split())
        if s.startswith("data:") and "," in s:
            s = s.split(",", 1)[1]
        if not s:
            raise EmptyAudioError("the base64 audio is empty; send the bytes of an audio file, base64-encoded")
        limit = self.max_inline_bytes
        instead = "Save the audio to a file in an allowed folder and pass its path instead" if self.restricted else \
            "Save the audio to a file and pass its path instead"
        if len(s) // 4 * 3 > limit + 3:  # checked before decoding anything
            raise AudioTooLargeError(
                f"the base64 audio holds about {len(s) * 3 / 4 / MiB:.1f} MiB; the limit is {limit / MiB:.1f} MiB. "
                f"{instead}, or raise the limit", setting="max_inline_mb"
            )
        s += "=" * (-len(s) % 4)
        try:
            data = base64.b64decode(s, altchars=b"-_" if ("-" in s or "_" in s) else None, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AudioDecodeError(f"the audio is not valid base64 ({e}); send the file's bytes base64-encoded (RFC 4648)") from None
        if len(data) > limit:
            raise AudioTooLargeError(f"the base64 audio decodes to {len(data) / MiB:.1f} MiB; the limit is {limit / MiB:.1f} MiB. "
                                     f"{instead}, or raise the limit", setting="max_inline_mb")
        return data

    # -- internals -------------------------------------------------------------------------------

    def _roots(self) -> list[tuple[Path, str]]:
        """(folder as configured, its real location) for each allowed folder."""
        return [(d, _realpath(os.path.expanduser(d)) or os.path.abspath(os.path.expanduser(d))) for d in self.folders or ()]

    def _locate(self, text: str) -> tuple[str, str]:
        """(real path, real allowed folder holding it) of an existing entry, or an error saying why not."""
        roots = self._roots()
        if not roots:
            raise AccessDeniedError(
                "reading files is disabled: there are no allowed folders. Send the audio as base64, or ask the user "
                "to add the folder holding the audio to the allowed folders", setting="allowed_dirs"
            )
        path = Path(os.path.expanduser(text))
        if ".." in path.parts:
            raise AccessDeniedError(f"{text}: '..' is not allowed in paths; {self._where()}")
        if path.is_absolute():
            lexical = os.path.abspath(path)
            if not any(_inside(lexical, real) or _inside(lexical, os.path.abspath(os.path.expanduser(d)))
                       for d, real in roots):
                raise AccessDeniedError(f"{text} is outside the allowed folders; {self._where()}")
            candidates = [str(path)]
        else:
            candidates = [os.path.join(real, path) for _, real in roots]
        for cand in candidates:
            real = _realpath(cand)
            if real is None:
                raise _Changed  # a link on the way vanished while it was being read
            root = _root_of(real, roots)
            if root is None:
                raise AccessDeniedError(
                    f"{text} leads outside the allowed folders through a symbolic link; only files whose real "
                    f"location is inside them can be read ({self._where()})"
                )
            if os.path.lexists(real):
                return real, root
        raise AudioNotFoundError(f"{text}: no such file in the allowed folders; {self._where()}")

    def _check_stat(self, st: os.stat_result, shown: str) -> None:
        if stat.S_ISDIR(st.st_mode):
            raise AudioNotFoundError(f"{shown} is a folder, not an audio file; give the path of an audio file inside it",
                                     setting="folder")
        if not stat.S_ISREG(st.st_mode):
            raise AccessDeniedError(f"{shown} is not a regular file (a device, FIFO or socket); only audio files can be read")
        if self.restricted and not self.allow_hardlinks and st.st_nlink > 1:
            raise AccessDeniedError(
                f"{shown} has {st.st_nlink} names (hard links), and another name may lie outside the allowed folders, so "
                "it is not read. Copy the file into the folder (a copy, not a link), or allow hard links",
                setting="allow_hardlinks", value=True,
            )
        if st.st_size > self.max_file_bytes:
            raise AudioTooLargeError(
                f"{shown} is {st.st_size / MiB:.1f} MiB; files up to {self.max_file_bytes / MiB:.0f} MiB are accepted. "
                "Compress it (e.g. to Opus or FLAC), split it, or raise the limit", setting="max_file_mb"
            )

    def _verified(self, fd: int, shown: str, before: os.stat_result) -> OpenedAudio:
        """Check what was actually opened (not the name) and wrap it; closes the descriptor on refusal.
        Raises _Changed when it is not the file that was checked a moment ago."""
        try:
            st = os.fstat(fd)
            self._check_stat(st, shown)
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                raise _Changed
            if self.restricted:
                where = _fd_path(fd)
                if where is not None and _root_of(where, self._roots()) is None:
                    raise AccessDeniedError(
                        f"{shown} leads outside the allowed folders; only files whose real location is inside them "
                        f"can be read ({self._where()})"
                    )
            file = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        return OpenedAudio(file=file, name=shown, size=st.st_size)

    def _open_anywhere(self, text: str) -> OpenedAudio:
        path = os.path.expanduser(text)
        st = _stat(path, text, local=True)
        if stat.S_ISDIR(st.st_mode):
            raise AudioNotFoundError(f"{text} is a directory, not an audio file; pass the files inside it (e.g. '{text}/*.wav')")
        self._check_stat(st, text)
        try:
            return self._verified(os.open(path, _O_FILE), text, st)
        except OSError as e:
            raise _open_error(e, text, local=True) from None
        except _Changed:
            raise AudioError(f"{text}: the file was replaced while it was being opened; try again") from None

    def _where(self) -> str:
        # The folders as configured: what the server's configuration already publishes, never their real paths.
        return "allowed folders: " + ", ".join(str(d) for d in self.folders or ())


class _Changed(Exception):
    pass


def _path_text(user_path: str) -> str:
    text = (user_path or "").strip() if isinstance(user_path, str) else ""
    if not text or "\x00" in text:
        raise AccessDeniedError("the path is empty or contains a NUL character; give the path of an audio file")
    return text


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _root_of(real: str | None, roots: list[tuple[Path, str]]) -> str | None:
    return None if real is None else next((r for _, r in roots if _inside(real, r)), None)


def _realpath(path) -> str | None:
    """os.path.realpath, or None when the path changes under it (a link removed while being read)."""
    try:
        return os.path.realpath(path)
    except OSError:
        return None


def _stat(path, shown: str, local: bool = False) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        where = f"; check the path (relative paths start from {os.getcwd()})" if local else ""
        raise AudioNotFoundError(f"{shown}: no such file{where}") from None
    except OSError as e:
        raise _open_error(e, shown, local) from None


def _open_error(e: OSError, shown: str, local: bool = False) -> AudioError:
    if e.errno in (errno.EACCES, errno.EPERM):
        who = "make the file readable for this user" if local else "the server's user cannot read it"
        return AudioError(f"{shown}: permission denied; {who}")
    if e.errno == errno.ENOENT:
        return AudioNotFoundError(f"{shown}: no such file")
    return AudioNotFoundError(f"{shown}: cannot access the file ({e.strerror or type(e).__name__})")


# -- opening beneath a folder ------------------------------------------------------------------------

def _open_beneath(root: str, real: str) -> int:
    """Open `real` (a resolved path inside the folder `root`) following no symbolic link at all.

    `real` came from realpath a moment ago, so it holds no links; if one appears now, something was
    swapped and the open fails (ELOOP/ENOTDIR/EXDEV) instead of following it out.
    """
    rel = os.path.relpath(real, root)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if not parts or os.open not in os.supports_dir_fd or not _O_NOFOLLOW:
        return _open_and_compare(real)
    root_fd = os.open(root, _O_SEARCH)
    try:
        fd = _openat2(root_fd, rel)
        if fd is not None:
            return fd
        return _open_walk(root_fd, parts)
    finally:
        os.close(root_fd)


def _open_walk(root_fd: int, parts: list[str]) -> int:
    """openat one component at a time, none of them a link (what openat2 does in one call)."""
    current = root_fd
    try:
        for name in parts[:-1]:
            nxt = os.open(name, _O_SEARCH | _O_NOFOLLOW, dir_fd=current)
            if current != root_fd:
                os.close(current)
            current = nxt
        return os.open(parts[-1], _O_FILE | _O_NOFOLLOW, dir_fd=current)
    finally:
        if current != root_fd:
            os.close(current)


def _open_and_compare(real: str) -> int:
    """Systems without openat (Windows): open by name, then make sure the name still means that file."""
    fd = os.open(real, _O_FILE | _O_NOFOLLOW)
    try:
        st, now = os.fstat(fd), os.stat(real)
        if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino) or os.path.realpath(real) != real:
            raise OSError(errno.EXDEV, "the path changed while it was being opened")
    except BaseException:
        os.close(fd)
        raise
    return fd


_openat2_works: bool | None = None if sys.platform.startswith("linux") else False
_SYS_OPENAT2 = 437  # the same number on every Linux architecture (new syscalls share one table)
_RESOLVE = 0x08 | 0x04 | 0x02  # RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


@functools.cache
def _syscall():
    import ctypes

    fn = ctypes.CDLL(None, use_errno=True).syscall
    fn.restype = ctypes.c_long
    return fn


@functools.cache
def _OpenHow():  # noqa: N802 - a type
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    return OpenHow


def _openat2(dir_fd: int, rel: str) -> int | None:
    """openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): the fd, None when the
    kernel or a container's seccomp filter does not offer it, or OSError for a refused open."""
    global _openat2_works
    if _openat2_works is False:
        return None
    import ctypes

    try:
        syscall = _syscall()
    except (OSError, AttributeError):
        _openat2_works = False
        return None
    how = _OpenHow()(flags=_O_FILE | _O_NOFOLLOW, mode=0, resolve=_RESOLVE)
    fd = syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dir_fd), ctypes.c_char_p(os.fsencode(rel)),
                 ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        _openat2_works = True
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG) and not _openat2_works:
        _openat2_works = False  # no openat2 here (old kernel, seccomp): the walk does the same job
        return None
    raise OSError(err, os.strerror(err))


def _fd_path(fd: int) -> str | None:
    """Where an open descriptor really is, when the system says (Linux /proc, macOS F_GETPATH)."""
    if sys.platform.startswith("linux"):
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return where.removesuffix(" (deleted)") if where.startswith("/") else None
    if sys.platform == "darwin":
        import fcntl

        try:
            raw = fcntl.fcntl(fd, 50, b"\0" * 1024)  # F_GETPATH
        except OSError:
            return None
        return os.path.realpath(os.fsdecode(raw.split(b"\0", 1)[0]))
    return None


# -- globbing without leaving the folders --------------------------------------------------------------

def _glob(folder: str, parts: tuple[str, ...], roots: list[tuple[Path, str]] | None, rel: str = "") -> Iterator[str]:
    """Relative paths under `folder` matching the glob `parts` ('**' = any depth). Links to folders
    are entered only when their real location is inside the allowed folders; '**' enters none."""
    if not parts:
        if rel:
            yield rel
        return
    head, rest = parts[0], parts[1:]
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    if head == "**":
        yield from _glob(folder, rest, roots, rel)
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                yield from _glob(e.path, parts, roots, os.path.join(rel, e.name))
        return
    for e in entries:
        if not fnmatch.fnmatchcase(e.name, head):
            continue
        if not rest:
            yield os.path.join(rel, e.name)
        elif _enterable(e, roots):
            yield from _glob(e.path, rest, roots, os.path.join(rel, e.name))


def _enterable(entry: os.DirEntry, roots: list[tuple[Path, str]] | None) -> bool:
    try:
        if not entry.is_dir():
            return False
        if not entry.is_symlink():
            return True
    except OSError:
        return False
    return roots is None or _root_of(_realpath(entry.path), roots) is not None
