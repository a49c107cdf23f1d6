"""What a tool call may touch beyond the files: http(s) URLs (only when enabled), and the rule that a
call names exactly one audio source. Every refusal is an SERError whose message says what to do.

Files and inline audio go through ser_tool's `AllowedFolders` (the one allowed-folders policy, shared
with the LangChain tool): a file is opened once, checked on the open descriptor, and decoded from it.
Its refusals carry hints (the settings that would lift them); mcp_server.messages words them.

A URL's host is resolved once; every address must be public (unless private ones are allowed) and the
download connects to the address that was checked (the Host header and TLS server name keep the
name), so a second DNS answer cannot point it elsewhere. Each redirect is checked the same way.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from ser_tool import (
    AccessDeniedError,
    AllowedFolders,
    AudioError,
    AudioTooLargeError,
    ConfigError,
)

__all__ = ["AccessDeniedError", "FetchError", "Sandbox", "SandboxPolicy", "validate_one_source"]

MAX_REDIRECTS = 5

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
    allow_hardlinks: bool = False

    def allowed_folders(self) -> AllowedFolders:
        """The file part of this policy, as ser_tool's shared allowed-folders policy."""
        return AllowedFolders(folders=tuple(self.allowed_dirs), max_file_bytes=self.max_file_bytes,
                              max_inline_bytes=self.max_inline_bytes, max_batch_files=self.max_batch_files,
                              allow_hardlinks=self.allow_hardlinks)


class Sandbox:
    """Turns a caller's audio reference into something safe to decode: `files` (open_file, list_folder,
    decode_base64) for paths and inline audio, `fetch_url` for URLs."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self.policy = policy
        self.files: AllowedFolders = policy.allowed_folders()

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
                        target, headers, extensions = await self._pinned(current)
                        async with client.stream("GET", target, headers=headers | {"Accept": "audio/*, */*"},
                                                 extensions=extensions) as resp:
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

    async def _pinned(self, url: str) -> tuple[object, dict[str, str], dict[str, str]]:
        """The request to send for `url`: (URL, headers, httpx extensions). Unless private addresses are
        allowed, the host is resolved here, once, every address it has must be public, and the request
        goes to the first of them with the name kept in the Host header and the TLS server name (SNI,
        which certificates are also checked against). So a DNS answer that changes between the check and
        the connection (DNS rebinding) cannot send the download to a loopback or private address."""
        import httpx

        if self.policy.url_allow_private:
            return url, {}, {}
        try:
            parts = httpx.URL(url)
            host = parts.raw_host.decode("ascii")  # IDNA-encoded: what DNS and the server see
        except (httpx.InvalidURL, UnicodeError) as e:
            raise AccessDeniedError(f"not a valid URL ({e}); give an http(s) URL of an audio file") from None
        ip = await self._public_address(host, parts.port or (443 if parts.scheme == "https" else 80))
        if _is_ip(host):
            return url, {}, {}
        headers = {"Host": parts.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return parts.copy_with(host=str(ip)), headers, extensions

    async def _public_address(self, host: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The host's first address after refusing loopback, private, link-local and other non-public ones."""
        import socket

        import anyio

        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise FetchError(f"{host}: cannot resolve the host name ({e})") from None
        addresses = []
        for *_, sockaddr in infos:
            try:
                ip = ipaddress.ip_address(sockaddr[0])
            except ValueError:
                raise AccessDeniedError(f"{host} resolves to an address this server cannot check ({sockaddr[0]!r})") from None
            mapped = getattr(ip, "ipv4_mapped", None)
            if not (mapped or ip).is_global or ip.is_multicast:
                raise AccessDeniedError(
                    f"{host} resolves to {ip}, a loopback, private or otherwise non-public address; this "
                    "server does not fetch from those (SER_URL_ALLOW_PRIVATE=1 allows it)"
                )
            addresses.append(ip)
        if not addresses:
            raise FetchError(f"{host}: the host name has no address")
        return addresses[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def validate_one_source(**sources: object) -> str:
    """The name of the one source given, or an error naming what was wrong."""
    given = [k for k, v in sources.items() if v not in (None, "")]
    if len(given) != 1:
        names = ", ".join(sources)
        got = "none" if not given else " and ".join(given)
        raise ConfigError(f"give exactly one audio source ({names}); got {got}")
    return given[0]
