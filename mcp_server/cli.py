"""`ser-mcp`: run the MCP server over stdio (default, for desktop clients) or streamable HTTP.

Flags override SER_* environment variables. stdout belongs to the protocol: logging goes to stderr,
and on stdio anything else that writes to file descriptor 1 (a library's print, a C extension) is
sent to stderr as well, so it cannot corrupt the session.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ser_tool.console import require_extra
from ser_tool.settings import add_model_flags

EXIT_OK, EXIT_USAGE = 0, 2
# the `mcp` extra: the SDK, and what the URL fetcher and the HTTP transport run on
MCP_MODULES = ("mcp", "httpx", "uvicorn", "anyio")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ser-tool")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ser-mcp",
        description="MCP server for speech emotion recognition: lets Claude and other MCP clients hear how something was said.",
        epilog=f"Every option can also be set with an SER_ environment variable (e.g. SER_ALLOWED_DIRS=/a{os.pathsep}/b, "
               "SER_ALLOW_URLS=1, SER_BACKEND=hf). Flags win over the environment.",
    )
    p.add_argument("--version", action="version", version=f"ser-mcp (ser-tool {_version()})")
    t = p.add_argument_group("transport")
    t.add_argument("--transport", choices=("stdio", "http"), help="stdio (default; for Claude Desktop/Code) or streamable HTTP")
    t.add_argument("--host", help="HTTP: address to bind (default 127.0.0.1, this machine only)")
    t.add_argument("--port", type=int, help="HTTP: port (default 8765); the endpoint is http://HOST:PORT/mcp")
    a = p.add_argument_group("what the tools may read")
    a.add_argument("--allowed-dir", action="append", metavar="DIR", dest="allowed_dirs",
                   help="a folder whose audio files the tools may read (repeat for several); none: reading files is off")
    a.add_argument("--allow-hardlinks", action="store_true", default=None,
                   help="read files that have several names (hard links; another name may lie outside the folders)")
    a.add_argument("--allow-urls", action="store_true", default=None, help="let the tools download audio from http(s) URLs (off by default)")
    a.add_argument("--url-allow-private", action="store_true", default=None, help="let URLs point at loopback/private addresses")
    a.add_argument("--url-timeout", type=float, help="seconds one URL download may take (default 30)")
    a.add_argument("--max-download-mb", type=float, help="largest URL download, MiB (default 100)")
    a.add_argument("--max-inline-mb", type=float, help="largest audio_base64 payload (decoded), MiB (default 10)")
    a.add_argument("--max-batch-files", type=int, help="most files one batch call analyses (default 50)")
    a.add_argument("--max-concurrent", type=int, help="analyses that run at once; more calls wait their turn (default 4)")
    a.add_argument("--call-timeout", type=float, help="seconds one call's analysis may take, a batch's files together "
                                                      "(default 600; 0: no limit)")
    add_model_flags(p, asr=True)
    m = p.add_argument_group("models on this server")
    m.add_argument("--extra-backends", help="more backends a caller may choose, comma-separated NAME or NAME=MODEL")
    m.add_argument("--no-warm-up", action="store_false", default=None, dest="warm_up",
                   help="load the model on the first call instead of in the background right after start")
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="stderr log level (default INFO)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_extra("mcp", MCP_MODULES, command="ser-mcp", what="the MCP server")
    # Before torch loads: idle OpenMP threads sleep instead of spinning. The server runs forward passes
    # on a thread other than the main one, and spinning OpenMP teams then starve it (20x slower
    # under load on 2 cores, see mcp_server/pool.py). Costs nothing measurable for one stream.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ser_tool import ConfigError
    from ser_tool.console import error_text

    from mcp_server.settings import ServerSettings

    try:
        settings = ServerSettings.from_args(args)
        _setup_logging(settings.log_level)
        # Claim stdout before anything else is imported or built: from here on only the protocol writes there.
        protocol = claim_stdout() if settings.transport == "stdio" else None
        # Model loading chatter from transformers/huggingface_hub would only add noise to the log.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")
        from mcp_server.server import build_server

        server = build_server(settings)
    except ConfigError as e:
        print(f"ser-mcp: error: {error_text(e, args)}", file=sys.stderr)
        return EXIT_USAGE
    log = logging.getLogger("mcp_server")
    log.info("ser-mcp %s: transport %s, backends %s, allowed folders %s, URLs %s", _version(), settings.transport,
             ", ".join(settings.backend_specs()), ", ".join(map(str, settings.allowed_dirs)) or "none",
             "on" if settings.allow_urls else "off")
    for d in settings.allowed_dirs:
        if not d.is_dir():
            log.warning("allowed folder %s does not exist (yet)", d)
    try:
        if settings.transport == "http":
            _run_http(server, settings)
        else:
            serve_stdio(server, protocol)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings only
    logging.getLogger("mcp_server").setLevel(level)
    logging.getLogger("mcp").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def claim_stdout():
    """Keep the real stdout for protocol messages only; send everything else written to fd 1 to stderr.

    Returns the protocol stream (an async text file) for `serve_stdio`."""
    from io import TextIOWrapper

    import anyio

    sys.stdout.flush()
    protocol_fd = os.dup(1)  # the real stdout, for JSON-RPC only
    os.dup2(2, 1)  # fd 1 (print, C libraries) now goes to stderr
    sys.stdout = sys.stderr
    return anyio.wrap_file(TextIOWrapper(os.fdopen(protocol_fd, "wb", buffering=0), encoding="utf-8", write_through=True))


def serve_stdio(server, protocol=None) -> None:
    """Serve `server` (a FastMCP) on stdin and the protocol stream from `claim_stdout`."""
    from io import TextIOWrapper

    import anyio
    from mcp.server.stdio import stdio_server

    protocol = protocol or claim_stdout()
    stdin = anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    low = server._mcp_server  # what FastMCP.run_stdio_async runs, with the process's own stdout

    async def serve() -> None:
        async with stdio_server(stdin=stdin, stdout=protocol) as (read_stream, write_stream):
            await low.run(read_stream, write_stream, low.create_initialization_options())

    anyio.run(serve)


def _run_http(server, settings) -> None:
    import anyio
    import uvicorn

    log = logging.getLogger("mcp_server")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("HTTP bound to %s: other machines can reach this server, and it has no authentication", settings.host)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            log_level=settings.log_level.lower(), lifespan="on")
    log.info("streamable HTTP on http://%s:%d%s", settings.host, settings.port, server.settings.streamable_http_path)
    anyio.run(uvicorn.Server(config).serve)


if __name__ == "__main__":
    sys.exit(main())
