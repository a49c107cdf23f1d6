"""ser-tool's MCP server: speech emotion recognition as tools for Claude and any MCP client.

    ser-mcp                                   # stdio, for Claude Desktop / Claude Code
    ser-mcp --transport http --port 8765      # streamable HTTP on http://127.0.0.1:8765/mcp

Layout: settings (flags + SER_* env) -> sandbox (URLs; files via ser_tool.AllowedFolders) + pool (the shared, lazily
loaded models; blocking work) -> tools (typed tool functions over the shared ServerState) + prompts -> server
(FastMCP: lifespan context, tools, resources, prompt) -> cli (transports).
The only package that imports `mcp`; it uses ser_tool's public API and nothing flows back.
"""

from mcp_server.pool import ModelPool
from mcp_server.sandbox import AccessDeniedError, FetchError, Sandbox, SandboxPolicy
from mcp_server.settings import ServerSettings

__all__ = ["AccessDeniedError", "FetchError", "ModelPool", "Sandbox", "SandboxPolicy", "ServerSettings", "build_server"]


def build_server(*args, **kwargs):
    """Build the FastMCP server (see mcp_server.server.build_server); imports `mcp` on first call."""
    from mcp_server.server import build_server as build

    return build(*args, **kwargs)
