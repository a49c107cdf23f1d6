"""What a tool call may touch: files inside the allowed folders, size-capped inline audio, and
(only when enabled) http(s) URLs. Every refusal is an SERError whose message says what to do.

Paths are resolved (symbolic links followed) before they are checked, so neither `..` nor a link
can lead outside the allowed folders; only regular files are opened (no devices, FIFOs, sockets).
Sizes are checked before anything is decoded; the duration limit is checked by ser_tool from the
file header, also before decoding.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import urljoin, urlsplit, urlunsplit

from ser_tool import (
    AudioDecodeError,
    AudioError,
    AudioNotFoundError,
    AudioTooLargeError,
    ConfigError,
    EmptyAudioError,
    SERError,
)

__all__ = ["AUDIO_EXTENSIONS", "AccessDeniedError", "FetchError", "Sandbox", "SandboxPolicy", "validate_one_source"]

# What a folder listing picks up when no pattern is given (libsndfile's formats plus ffmpeg's usual ones).
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf",
    ".m4a", ".aac", ".webm", ".wma", ".amr", ".mp4",
})
MAX_REDIRECTS = 5


class AccessDeniedError(SERError):
    """The request asks for something this server does not allow (a path outside the allowed folders, a URL when URLs are off)."""


class FetchError(AudioError):
    """The audio at a URL could not be downloaded."""


@dataclass(frozen=True)
class SandboxPolicy:
    allowed_dirs: tuple[Path, ...] = ()
    max_file_bytes: int = 1024 * 2**20
    max_inline_bytes: int = 10 * 2**20
    allow_urls: bool = False
    url_allow_private: bool = False
    url_timeout: float = 30.0
    max_download_bytes: int = 100 * 2**20
    max_batch_files: int = 50


class Sandbox:
    """Turns a caller's audio reference (path, folder, base64 text, URL) into something safe to decode."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self.policy = policy
        # Compare real paths: an allowed folder may itself be reached through a link (/tmp on macOS).
        self.roots: tuple[Path, ...] = tuple(Path(os.path.realpath(d)) for d in policy.allowed_dirs)

    # -- files -----------------------------------------------------------------------------------

    def resolve_file(self, user_path: str) -> Path:
        """The real path of a regular file inside an allowed folder, or an error saying why not.

        Relative paths are looked up in each allowed folder in turn (the first that has it wins).
        """
        real, shown = self._resolve(user_path)
        st = self._stat(real, shown)
        if stat.S_ISDIR(st.st_mode):
            raise AudioNotFoundError(
                f"{shown} is a folder, not an audio file; analyse the files in it with "
                f"analyze_speech_emotion_batch (folder='{user_path}')"
            )
        if not stat.S_ISREG(st.st_mode):
            raise AccessDeniedError(f"{shown} is not a regular file (a device, FIFO or socket); only audio files can be analysed")
        self._check_file_size(st.st_size, shown)
        return real

    def list_folder(self, user_folder: str, pattern: str | None = None) -> list[str]:
        """Paths (as the caller would write them, for resolve_file) of the audio files in an allowed folder.

        pattern: a glob relative to the folder ('*.wav', '**/*.flac'); without one, every file with
        an audio extension directly in the folder.
        """
        real, shown = self._resolve(user_folder)
        st = self._stat(real, shown)
        if not stat.S_ISDIR(st.st_mode):
            raise AudioNotFoundError(f"{shown} is not a folder; pass it as a file path instead")
        if pattern is not None:
            p = PurePath(pattern)
            if not pattern.strip() or p.is_absolute() or ".." in p.parts:
                raise ConfigError(f"pattern {pattern!r} must be a glob inside the folder (e.g. '*.wav' or '**/*.flac'), without '..'")
        matches = sorted(real.glob(pattern)) if pattern else sorted(real.iterdir())
        out = []
        for m in matches:
            rel = m.relative_to(real)
            if pattern is None and m.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if m.is_dir():
                continue
            out.append(str(PurePath(user_folder.strip()) / rel))
        if len(out) > self.policy.max_batch_files:
            raise AccessDeniedError(
                f"{shown} has {len(out)} matching files; one call analyses at most {self.policy.max_batch_files}. "
                "Narrow the pattern (e.g. 'call_2024*.wav') or pass a list of paths, in several calls"
            )
        return out

    def _resolve(self, user_path: str) -> tuple[Path, str]:
        if not self.roots:
            raise AccessDeniedError(
                "reading files is disabled: this server has no allowed folders. Ask the user to add the folder "
                "holding the audio to SER_ALLOWED_DIRS (or --allowed-dir) in the server's configuration, or send "
                "the audio as audio_base64"
            )
        text = (user_path or "").strip()
        if not text or "\x00" in text:
            raise AccessDeniedError("the path is empty or contains a NUL character; give the path of an audio file")
        path = Path(os.path.expanduser(text))
        if ".." in path.parts:
            raise AccessDeniedError(f"{text}: '..' is not allowed in paths; {self._where()}")
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        if path.is_absolute() and not any(_inside(Path(os.path.abspath(path)), r) or _inside(path, d)
                                          for r, d in zip(self.roots, self.policy.allowed_dirs)):
            raise AccessDeniedError(f"{text} is outside the allowed folders; {self._where()}")
        for cand in candidates:
            real = Path(os.path.realpath(cand))
            if not any(_inside(real, r) for r in self.roots):
                raise AccessDeniedError(
                    f"{text} leads outside the allowed folders through a symbolic link; only files whose real "
                    f"location is inside them can be read ({self._where()})"
                )
            if os.path.lexists(real):
                return real, text
        raise AudioNotFoundError(f"{text}: no such file in the allowed folders; {self._where()}")

    @staticmethod
    def _stat(real: Path, shown: str) -> os.stat_result:
        try:
            return os.stat(real)
        except FileNotFoundError:
            raise AudioNotFoundError(f"{shown}: no such file") from None
        except PermissionError:
            raise AudioError(f"{shown}: permission denied; the server's user cannot read it") from None
        except OSError as e:
            raise AudioNotFoundError(f"{shown}: cannot access the file ({e.strerror})") from e

    def _check_file_size(self, n: int, shown: str) -> None:
        if n > self.policy.max_file_bytes:
            raise AudioTooLargeError(
                f"{shown} is {n / 2**20:.1f} MiB; this server accepts files up to {self.policy.max_file_bytes / 2**20:.0f} MiB "
                "(SER_MAX_FILE_MB). Compress it (e.g. to Opus or FLAC) or split it"
            )

    def _where(self) -> str:
        return "allowed folders: " + ", ".join(str(d) for d in self.policy.allowed_dirs)

    # -- inline audio ----------------------------------------------------------------------------

    def decode_base64(self, text: str) -> bytes:
        """Bytes of an audio file sent as base64 (a `data:` URI prefix and line breaks are tolerated)."""
        s = "".join((text or "").split())
        if s.startswith("data:") and "," in s:
            s = s.split(",", 1)[1]
        if not s:
            raise EmptyAudioError("audio_base64 is empty; send the bytes of an audio file, base64-encoded")
        limit = self.policy.max_inline_bytes
        if len(s) // 4 * 3 > limit + 3:  # checked before decoding anything
            raise AudioTooLargeError(
                f"audio_base64 holds about {len(s) * 3 / 4 / 2**20:.1f} MiB of audio; the limit is {limit / 2**20:.1f} MiB "
                "(SER_MAX_INLINE_MB). Save the audio to a file in an allowed folder and pass its path instead"
            )
        s += "=" * (-len(s) % 4)
        try:
            data = base64.b64decode(s, altchars=b"-_" if ("-" in s or "_" in s) else None, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AudioDecodeError(f"audio_base64 is not valid base64 ({e}); send the file's bytes base64-encoded (RFC 4648)") from None
        if len(data) > limit:
            raise AudioTooLargeError(f"audio_base64 decodes to {len(data) / 2**20:.1f} MiB; the limit is {limit / 2**20:.1f} MiB (SER_MAX_INLINE_MB)")
        return data

    # -- URLs ------------------------------------------------------------------------------------

    def check_url(self, url: str) -> str:
        """The URL if the policy lets it be fetched (scheme, host); raises otherwise. Returns the name to show."""
        if not self.policy.allow_urls:
            raise AccessDeniedError(
                "fetching audio from URLs is disabled on this server (the default). Ask the user to download the "
                "file into an allowed folder and pass its path, or to start the server with SER_ALLOW_URLS=1 (--allow-urls)"
            )
        parts = urlsplit((url or "").strip())
        if parts.scheme.lower() not in ("http", "https"):
            raise AccessDeniedError(f"only http:// and https:// URLs can be fetched, not {parts.scheme or 'a scheme-less'!s}: URL {url!r}")
        if not parts.hostname:
            raise AccessDeniedError(f"{url!r} has no host name")
        # The name shown in reports drops credentials and the query (which often carries tokens).
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        return urlunsplit((parts.scheme.lower(), host, parts.path, "", ""))

    async def fetch_url(self, url: str) -> tuple[bytes, str]:
        """Download a URL's bytes within the size cap and the time limit. Returns (bytes, name to show)."""
        import anyio
        import httpx

        shown = self.check_url(url)
        timeout = self.policy.url_timeout
        try:
            with anyio.fail_after(timeout):
                async with httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))) as client:
                    current = url.strip()
                    for _ in range(MAX_REDIRECTS + 1):
                        self.check_url(current)
                        await self._check_address(current)
                        async with client.stream("GET", current, headers={"Accept": "audio/*, */*"}) as resp:
                            if resp.is_redirect:
                                current = urljoin(current, resp.headers.get("location", ""))
                                continue
                            if resp.status_code != 200:
                                raise FetchError(f"{shown}: the server answered HTTP {resp.status_code} {resp.reason_phrase}; check the URL")
                            return await self._read_capped(resp, shown), shown
                    raise FetchError(f"{shown}: more than {MAX_REDIRECTS} redirects; give the final URL of the file")
        except TimeoutError:
            raise FetchError(f"{shown}: the download did not finish within {timeout:g} s (SER_URL_TIMEOUT)") from None
        except httpx.HTTPError as e:
            raise FetchError(f"{shown}: the download failed ({type(e).__name__}: {e or 'no details'}); check the URL") from None

    async def _read_capped(self, resp, shown: str) -> bytes:
        cap = self.policy.max_download_bytes
        too_big = (f"{shown} is larger than {cap / 2**20:.0f} MiB, the download limit (SER_MAX_DOWNLOAD_MB); "
                   "download it into an allowed folder and pass its path instead")
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise AudioTooLargeError(too_big)
        chunks, n = [], 0
        async for chunk in resp.aiter_bytes():
            n += len(chunk)
            if n > cap:
                raise AudioTooLargeError(too_big)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _check_address(self, url: str) -> None:
        """Refuse loopback, private, link-local and other non-public addresses unless allowed."""
        if self.policy.url_allow_private:
            return
        import socket

        import anyio

        parts = urlsplit(url)
        try:
            infos = await anyio.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                            type=socket.SOCK_STREAM)
        except OSError as e:
            raise FetchError(f"{parts.hostname}: cannot resolve the host name ({e})") from None
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            if not ip.is_global or ip.is_multicast:
                raise AccessDeniedError(
                    f"{parts.hostname} resolves to {ip}, a loopback, private or otherwise non-public address; this "
                    "server does not fetch from those (SER_URL_ALLOW_PRIVATE=1 allows it)"
                )


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def validate_one_source(**sources: object) -> str:
    """The name of the one source given, or an error naming what was wrong."""
    given = [k for k, v in sources.items() if v not in (None, "")]
    if len(given) != 1:
        names = ", ".join(sources)
        got = "none" if not given else " and ".join(given)
        raise ConfigError(f"give exactly one audio source ({names}); got {got}")
    return given[0]
