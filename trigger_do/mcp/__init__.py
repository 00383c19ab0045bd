"""MCP tools for AI agents (the `mcp` extra): `trigger-do mcp` over stdio, `/mcp` over HTTP."""

from .backend import Api, McpToolError
from .server import build_server, tools_for

__all__ = ["Api", "McpToolError", "build_server", "tools_for"]
