"""`ser-mcp` as a real subprocess: over stdio with the SDK's client (as Claude Desktop/Code run it),
loaded into LangChain with langchain-mcp-adapters, and over streamable HTTP.

Like a desktop client, the tests pass the server only a minimal environment plus the SER_* `env`
block: whatever the server needs must be in it.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from ser_tool import AffectReport
from ser_tool.testing import make_tiny_hf_classifier
from tests.helpers import (
    REPO,
    backend_env,
    backend_settings,
    check_batch,
    check_report,
    embedded_available,
    error_text,
    ser_mcp_command,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ANALYZE, BATCH = "analyze_speech_emotion", "analyze_speech_emotion_batch"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory, audio_dir):
    """The `env` block a user would put in the client config: allowed folder + a real backend."""
    if embedded_available():
        settings = backend_settings("embedded", None)
    else:
        settings = backend_settings("hf-tiny", make_tiny_hf_classifier(tmp_path_factory.mktemp("tiny-hf")))
    return {"SER_ALLOWED_DIRS": str(audio_dir), "HF_HOME": str(tmp_path_factory.mktemp("hf-home"))} | backend_env(settings)


def stdio_params(env: dict, *extra_args: str) -> StdioServerParameters:
    command, args = ser_mcp_command()
    return StdioServerParameters(command=command, args=[*args, *extra_args], env=env)


async def test_stdio_subprocess_end_to_end(server_env, audio_dir):
    env = server_env | {"SER_WARM_UP": "0"}  # so the test can see that nothing loaded before the handshake
    t0 = time.perf_counter()
    async with stdio_client(stdio_params(env)) as (read, write), ClientSession(read, write) as client:
        init = await client.initialize()
        handshake = time.perf_counter() - t0
        print(f"stdio handshake {handshake:.2f} s after spawn")
        assert init.serverInfo.name == "ser-tool"
        assert handshake < 10  # process start included; typically ~0.5 s
        config = json.loads((await client.read_resource("ser://config")).contents[0].text)
        assert config["model_loaded"] is False and config["allowed_folders"] == [str(audio_dir)]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {ANALYZE, BATCH, "transcribe_speech_emotion"}

        sample = check_report(await client.call_tool(ANALYZE, {"path": "speech_en.ogg"}), tools[ANALYZE])
        assert sample.duration > 5
        long = check_report(await client.call_tool(ANALYZE, {"path": str(audio_dir / "long.flac"), "timeline": True}), tools[ANALYZE])
        assert long.timeline
        assert "'..' is not allowed" in error_text(await client.call_tool(ANALYZE, {"path": "../x.wav"}))
        assert "not an audio file" in error_text(await client.call_tool(ANALYZE, {"path": "corrupt.wav"}))
        assert "disabled" in error_text(await client.call_tool(ANALYZE, {"url": "http://127.0.0.1:1/a.wav"}))
        again = check_report(await client.call_tool(ANALYZE, {"path": "short.wav"}), tools[ANALYZE])
        assert again.source == "short.wav"
        batch = check_batch(await client.call_tool(BATCH, {"paths": ["short.wav", "missing.wav"]}), tools[BATCH])
        assert (batch["analysed"], batch["failed"]) == (1, 1)
        config = json.loads((await client.read_resource("ser://config")).contents[0].text)
        assert config["model_loaded"] is True


async def test_stray_stdout_writes_cannot_break_the_protocol():
    """Anything but protocol messages on stdout would corrupt a stdio session: the CLI sends it to stderr."""
    script = textwrap.dedent("""
        import os
        from mcp.server.fastmcp import FastMCP
        from mcp_server.cli import claim_stdout, serve_stdio
        protocol = claim_stdout()
        print("noise from an import")
        server = FastMCP("noisy")

        @server.tool()
        def shout() -> str:
            print("noise from a library")
            os.write(1, b"noise from C code\\n")
            return "ok"

        serve_stdio(server, protocol)
    """)
    params = StdioServerParameters(command=sys.executable, args=["-c", script], env={"PYTHONPATH": os.getcwd()})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        for _ in range(2):
            res = await client.call_tool("shout", {})
            assert not res.isError and res.content[0].text == "ok"


async def test_langchain_loads_and_calls_the_tools(server_env):
    from langchain_core.messages import ToolMessage
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.tools import load_mcp_tools

    command, args = ser_mcp_command()
    client = MultiServerMCPClient({"ser": {"transport": "stdio", "command": command, "args": args, "env": server_env}})
    async with client.session("ser") as session:
        tools = {t.name: t for t in await load_mcp_tools(session)}
        assert set(tools) == {ANALYZE, BATCH, "transcribe_speech_emotion"}
        tool = tools[ANALYZE]
        assert "path" in tool.args and "expressed" in tool.description.lower()
        msg = await tool.ainvoke({"type": "tool_call", "id": "1", "name": ANALYZE, "args": {"path": "speech_en.ogg"}})
        assert isinstance(msg, ToolMessage) and msg.status == "success"
        report = AffectReport.model_validate(msg.artifact["structured_content"])
        text = msg.content if isinstance(msg.content, str) else " ".join(b["text"] for b in msg.content)
        assert report.description in text
        # a user error reaches the agent as an error message it can recover from, not an exception
        bad = await tool.ainvoke({"type": "tool_call", "id": "2", "name": ANALYZE, "args": {"path": "../secret.wav"}})
        assert bad.status == "error" and "'..'" in str(bad.content)
        ok = await tool.ainvoke({"type": "tool_call", "id": "3", "name": ANALYZE, "args": {"path": "short.wav"}})
        assert ok.status == "success"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_streamable_http_transport(server_env, tmp_path):
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    command, args = ser_mcp_command()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([command, *args, "--transport", "http", "--port", str(port)],
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)} | server_env,
                            stdout=subprocess.PIPE, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await anyio.sleep(0.05)
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as client:
            await client.initialize()
            tools = {t.name: t for t in (await client.list_tools()).tools}
            check_report(await client.call_tool(ANALYZE, {"path": "short.wav"}), tools[ANALYZE])
            assert "exactly one" in error_text(await client.call_tool(ANALYZE, {}))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        log.close()
    assert out == b""  # HTTP mode logs to stderr only
    assert b"streamable HTTP on http://127.0.0.1" in (tmp_path / "server.log").read_bytes()


def test_end_of_input_ends_the_server_while_the_model_still_loads(tmp_path):
    """A client that goes away (stdin closed) ends the server at once; the background warm-up (a load that
    takes a minute here) does not hold the exit."""
    code = textwrap.dedent("""
        import sys, time
        import ser_tool.analyzer
        ser_tool.analyzer.load_backend = lambda spec: time.sleep(60)  # a model that loads for a minute
        from mcp_server.cli import main
        sys.exit(main([]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "ready" not in proc.stderr
    assert elapsed < 30, f"the server took {elapsed:.0f} s to end after its input did"
