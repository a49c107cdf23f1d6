"""Replays of the hostile campaign's sandbox attacks (issue 9, findings 2, 5 and 8 (hard links, DNS
rebinding)) against the shared allowed-folders policy and both surfaces that use it.

- the check-then-open race: a folder inside the allowed one is swapped for a link to an outside folder
  while calls run; the outside file must never be opened (the campaign won 89 of 400 calls);
- hard links: a second name inside for a file outside is refused unless allowed;
- batch patterns through a link to an outside folder list and name nothing outside;
- DNS rebinding: a host that answers a public address, then loopback, is never fetched from loopback;
- the MCP server and the LangChain tool accept and refuse the same paths.
"""

import http.server
import os
import socket
import sys
import threading
from contextlib import asynccontextmanager, contextmanager

import anyio
import pytest
import soundfile as sf
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_server.pool import ModelPool
from mcp_server.sandbox import FetchError, Sandbox, SandboxPolicy
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from ser_tool import AccessDeniedError, AllowedFolders, Analyzer, SERError, access
from ser_tool.langchain_tool import SpeechEmotionTool
from ser_tool.testing import SR, FakeBackend, voice

ANALYZE, BATCH = "analyze_speech_emotion", "analyze_speech_emotion_batch"
INSIDE_S, SECRET_S = 1.0, 2.5  # durations tell which file was decoded


@pytest.fixture
def tree(tmp_path):
    """allowed/swap/voice.wav (1.0 s) and outside/voice.wav (the secret, 2.5 s), plus links to outside."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "swap").mkdir(parents=True)
    outside.mkdir()
    sf.write(allowed / "swap" / "voice.wav", voice(INSIDE_S), SR)
    sf.write(allowed / "plain.wav", voice(INSIDE_S), SR)
    sf.write(outside / "voice.wav", voice(SECRET_S, f0=220), SR)
    sf.write(outside / "private-name.wav", voice(SECRET_S), SR)
    (allowed / "dirlink").symlink_to(outside, target_is_directory=True)
    (allowed / "filelink.wav").symlink_to(outside / "voice.wav")
    (allowed / "inner.wav").symlink_to(allowed / "plain.wav")
    return allowed, outside


def mcp_server(allowed, **settings):
    settings = ServerSettings(allowed_dirs=[allowed], warm_up=False, **settings)
    return build_server(settings, pool=ModelPool({"fake": FakeBackend()}, settings.analysis_options()))


@asynccontextmanager
async def session(server):
    async with create_connected_server_and_client_session(server) as client:
        yield client


def lc_tool(allowed, **kw) -> SpeechEmotionTool:
    return SpeechEmotionTool(analyzer=Analyzer(FakeBackend()), allowed_dirs=[allowed], **kw)


def lc_call(tool, **args):
    return tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": args})


# -- the check-then-open race ------------------------------------------------------------------------

def _exchange():
    """renameat2(RENAME_EXCHANGE) where the C library has it: swaps two names atomically, so the
    folder is always there, as itself or as the link (the tightest race); None elsewhere."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    at_fdcwd, rename_exchange = -100, 2

    def exchange(a, b) -> None:
        if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")

    return exchange


@contextmanager
def swapping(allowed, outside):
    """A thread that keeps replacing allowed/swap (a real folder) with a link to `outside` and back.
    Yields a dict whose 'swaps' counts completed replacements."""
    swap, parked, link = allowed / "swap", allowed / "parked", allowed / ".link"
    stop, state = threading.Event(), {"swaps": 0}
    exchange = _exchange()
    if exchange is not None:
        link.symlink_to(outside, target_is_directory=True)
        try:
            exchange(swap, link)
            exchange(swap, link)
        except OSError:
            exchange = None
            link.unlink()

    def run():
        while not stop.is_set():
            if exchange is not None:
                exchange(swap, link)  # swap is now the link to outside
                exchange(swap, link)  # and the folder again
            else:
                os.rename(swap, parked)
                os.symlink(outside, swap)
                os.unlink(swap)
                os.rename(parked, swap)
            state["swaps"] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over often: the two threads interleave finely
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
        if exchange is not None:
            link.unlink()
    assert swap.is_dir() and not swap.is_symlink()


@pytest.mark.parametrize("opener", ["openat2 where the kernel has it", "openat walk"])
def test_race_open_file_never_opens_the_outside_file(tree, opener, monkeypatch):
    allowed, outside = tree
    if opener == "openat walk":  # the fallback for kernels or containers without openat2
        monkeypatch.setattr(access, "_openat2_works", False)
    box = AllowedFolders(folders=(allowed,))
    secret = os.stat(outside / "voice.wav")
    wins = opened = refused = 0
    with swapping(allowed, outside) as state:
        for _ in range(400):
            try:
                with box.open_file("swap/voice.wav") as f:
                    opened += 1
                    wins += os.path.samestat(os.fstat(f.file.fileno()), secret)
            except SERError:
                refused += 1
    assert wins == 0
    # the race was really run: both states were seen, many times over
    assert state["swaps"] > 10 and opened > 0 and refused > 0, (state, opened, refused)


@pytest.mark.anyio
async def test_race_mcp_tool_never_analyses_the_outside_file(tree):
    allowed, outside = tree
    durations = []
    async with session(mcp_server(allowed)) as client:
        with swapping(allowed, outside) as state:
            for _ in range(200):
                result = await client.call_tool(ANALYZE, {"path": "swap/voice.wav"})
                if not result.isError:
                    durations.append(result.structuredContent["duration"])
                else:
                    assert "voice.wav" in result.content[0].text and str(outside) not in result.content[0].text
    assert SECRET_S not in durations and durations, (state, len(durations))
    assert set(durations) == {INSIDE_S}


def test_race_langchain_tool_never_analyses_the_outside_file(tree):
    allowed, outside = tree
    tool = lc_tool(allowed)
    durations = []
    with swapping(allowed, outside):
        for _ in range(200):
            msg = lc_call(tool, audio_path="swap/voice.wav")
            if msg.status == "success":
                durations.append(msg.artifact.duration)
    assert durations and set(durations) == {INSIDE_S}


# -- hard links ------------------------------------------------------------------------------------

def test_hard_links_are_refused_unless_allowed(tree):
    allowed, outside = tree
    os.link(outside / "voice.wav", allowed / "hard.wav")
    with pytest.raises(AccessDeniedError, match="hard links") as e:
        AllowedFolders(folders=(allowed,)).open_file("hard.wav")
    assert "Copy the file into the folder" in str(e.value)
    with AllowedFolders(folders=(allowed,), allow_hardlinks=True).open_file("hard.wav") as f:
        assert os.path.samestat(os.fstat(f.file.fileno()), os.stat(outside / "voice.wav"))
    # two names both inside are refused too: the rule cannot tell where the other name is
    os.link(allowed / "plain.wav", allowed / "plain2.wav")
    with pytest.raises(AccessDeniedError, match="hard links"):
        AllowedFolders(folders=(allowed,)).open_file("plain2.wav")


@pytest.mark.anyio
async def test_hard_links_through_both_surfaces(tree):
    allowed, outside = tree
    os.link(outside / "voice.wav", allowed / "hard.wav")
    async with session(mcp_server(allowed)) as client:
        result = await client.call_tool(ANALYZE, {"path": "hard.wav"})
        assert result.isError and "hard links" in result.content[0].text and "SER_ALLOW_HARDLINKS" in result.content[0].text
    async with session(mcp_server(allowed, allow_hardlinks=True)) as client:
        result = await client.call_tool(ANALYZE, {"path": "hard.wav"})
        assert not result.isError and result.structuredContent["duration"] == SECRET_S
    msg = lc_call(lc_tool(allowed), audio_path="hard.wav")
    assert msg.status == "error" and "hard links" in msg.content
    assert lc_call(lc_tool(allowed, allow_hardlinks=True), audio_path="hard.wav").status == "success"


# -- batch patterns through links --------------------------------------------------------------------

@pytest.mark.anyio
async def test_batch_pattern_through_a_folder_link_lists_and_names_nothing_outside(tree):
    allowed, _ = tree
    async with session(mcp_server(allowed)) as client:
        for pattern in ("dirlink/*", "dirlink/*.wav", "*/*", "**/*", "**/*.wav", "*", "*link*"):
            result = await client.call_tool(BATCH, {"folder": ".", "pattern": pattern})
            text = " ".join(c.text for c in result.content)
            assert not any(word in text for word in ("private-name", "dirlink/voice", "filelink.wav")), (pattern, text)
            if not result.isError:
                sources = [r["source"] for r in result.structuredContent["results"]]
                assert all(r["report"]["duration"] == INSIDE_S for r in result.structuredContent["results"]), pattern
                assert set(sources) <= {"plain.wav", "inner.wav", "swap/voice.wav"}, (pattern, sources)
        result = await client.call_tool(BATCH, {"folder": ".", "pattern": "dirlink/*"})
        assert result.isError and "no files matching" in result.content[0].text
    files = AllowedFolders(folders=(allowed,))
    assert files.list_folder(".", "**/*.wav") == ["inner.wav", "plain.wav", "swap/voice.wav"]
    assert files.list_folder(".") == ["inner.wav", "plain.wav"]


def test_a_folder_link_that_stays_inside_is_listed(tree):
    allowed, _ = tree
    (allowed / "alias").symlink_to(allowed / "swap", target_is_directory=True)
    assert AllowedFolders(folders=(allowed,)).list_folder(".", "alias/*") == ["alias/voice.wav"]


# -- DNS rebinding -----------------------------------------------------------------------------------

PUBLIC = "93.184.216.34"  # a public address; the test never really connects to it


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.hits.append((self.path, self.headers.get("Host")))
        body = b"x" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def recording_server():
    hits: list = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fake_dns(monkeypatch):
    """Names under .test resolve by a script (one answer per lookup, the last one repeats; a tuple is
    an answer with several addresses); connections to PUBLIC
    are routed to `route` (loopback, where the test's server listens) or fail when it is None.
    Records every (host, port) the HTTP client connects to."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, anyio.connect_tcp
    state = {"answers": {}, "route": None, "connects": []}

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.endswith(".test"):
            queue = state["answers"][name]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            ips = answer if isinstance(answer, tuple) else (answer,)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0))) for ip in ips]
        return real_getaddrinfo(host, port, *args, **kwargs)

    async def connect_tcp(remote_host, remote_port, **kwargs):
        state["connects"].append((str(remote_host), remote_port))
        if str(remote_host) == PUBLIC:
            if state["route"] is None:
                raise OSError(101, "Network is unreachable")
            return await real_connect(state["route"], remote_port, **kwargs)
        return await real_connect(remote_host, remote_port, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(anyio, "connect_tcp", connect_tcp)
    return state


@pytest.mark.anyio
async def test_dns_rebinding_never_reaches_loopback(fake_dns):
    box = Sandbox(SandboxPolicy(allow_urls=True, url_timeout=10))
    with recording_server() as (port, hits):
        # first lookup: a public address (passes the check); every later one: loopback
        fake_dns["answers"]["rebind.test"] = [PUBLIC, "127.0.0.1"]
        with pytest.raises(FetchError, match="download failed"):
            await box.fetch_url(f"http://rebind.test:{port}/a.wav")
        assert hits == []  # the local server was never reached
        assert fake_dns["connects"] == [(PUBLIC, port)]
        # an answer that mixes public and loopback addresses is refused outright
        fake_dns["answers"]["mixed.test"] = [(PUBLIC, "127.0.0.1")]
        with pytest.raises(AccessDeniedError, match="non-public"):
            await box.fetch_url(f"http://mixed.test:{port}/a.wav")
        assert hits == []


@pytest.mark.anyio
async def test_pinned_fetch_keeps_the_host_name_and_rechecks_redirects(fake_dns):
    box = Sandbox(SandboxPolicy(allow_urls=True, url_timeout=10))
    fake_dns["route"] = "127.0.0.1"  # the "public" address is served by the local test server
    with recording_server() as (port, hits):
        fake_dns["answers"]["audio.test"] = [PUBLIC]
        data, shown = await box.fetch_url(f"http://audio.test:{port}/a.wav?token=x")
        assert data == b"x" * 100 and shown == f"http://audio.test:{port}/a.wav"
        assert hits == [("/a.wav?token=x", f"audio.test:{port}")]  # the server saw the name, not the address
        assert all(host == PUBLIC for host, _ in fake_dns["connects"])


@pytest.mark.anyio
async def test_https_requests_keep_the_name_for_tls(fake_dns):
    """For https the pinned request names the host as the TLS server name (SNI), which the certificate
    is verified against, and in the Host header; the connection goes to the checked address."""
    fake_dns["answers"]["secure.test"] = [PUBLIC, "127.0.0.1"]
    url, headers, extensions = await Sandbox(SandboxPolicy(allow_urls=True))._pinned("https://secure.test/a.wav?k=1")
    assert str(url) == f"https://{PUBLIC}/a.wav?k=1"
    assert headers == {"Host": "secure.test"} and extensions == {"sni_hostname": "secure.test"}


# -- one policy, two surfaces --------------------------------------------------------------------------

@pytest.mark.anyio
async def test_mcp_and_langchain_accept_and_refuse_the_same_paths(tree):
    allowed, outside = tree
    os.link(outside / "private-name.wav", allowed / "hard.wav")
    os.mkfifo(allowed / "pipe.wav")
    paths = [
        "plain.wav", " plain.wav ", "inner.wav", "swap/voice.wav", str(allowed / "plain.wav"),
        str(allowed / "swap" / "voice.wav"), "filelink.wav", "dirlink/voice.wav", str(allowed / "filelink.wav"),
        "../outside/voice.wav", "swap/../plain.wav", str(outside / "voice.wav"), "/etc/passwd", "missing.wav",
        "swap", ".", "hard.wav", "pipe.wav", "plain.wav\x00.txt", "~/plain.wav",
    ]
    files = AllowedFolders(folders=(allowed,))
    core = {}
    for p in paths:
        try:
            files.open_file(p).close()
            core[p] = "ok"
        except SERError as e:
            core[p] = type(e).__name__
    tool = lc_tool(allowed)
    async with session(mcp_server(allowed)) as client:
        for p in paths:
            mcp = await client.call_tool(ANALYZE, {"path": p})
            lc = lc_call(tool, audio_path=p)
            assert (not mcp.isError) == (lc.status == "success") == (core[p] == "ok"), (p, core[p], mcp.content[0].text, lc.content)
            if mcp.isError and p.strip() and core[p] != "ConfigError":  # the same refusal, worded with each surface's hints
                text = mcp.content[0].text.removeprefix(f"Error executing tool {ANALYZE}: ")
                assert text[:18] == lc.content[:18], (p, text, lc.content)
    assert [p for p in paths if core[p] == "ok"] == paths[:6]


# -- descriptors are released on every path ------------------------------------------------------------

def open_under(folder) -> list[str]:
    """Files under `folder` this process holds open (Linux /proc)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open descriptors")
@pytest.mark.anyio
async def test_no_descriptor_is_left_open(tree):
    allowed, _ = tree
    (allowed / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01" * 64)
    sf.write(allowed / "silent.wav", voice(1.0) * 0, SR)
    async with session(mcp_server(allowed)) as client:
        for path in ("plain.wav", "corrupt.wav", "silent.wav", "filelink.wav", "swap"):
            await client.call_tool(ANALYZE, {"path": path})
        await client.call_tool(BATCH, {"folder": ".", "pattern": "*.wav"})
        await client.call_tool("transcribe_speech_emotion", {"path": "plain.wav", "transcript": "hello"})
        await client.call_tool("transcribe_speech_emotion", {"path": "corrupt.wav", "transcript": "hello"})
    tool = lc_tool(allowed)
    for path in ("plain.wav", "corrupt.wav", "silent.wav"):
        lc_call(tool, audio_path=path)
    assert open_under(allowed) == []
