"""The MCP server (the official `mcp` SDK's low-level `Server`): lists the tools, with
`readOnlyHint`/`destructiveHint`, and calls them. Arguments are checked by each tool's
pydantic model (so `from` and the ignored Trigger.dev keys need no Python parameter); a bad
argument or an API error is a tool error (`isError`) carrying the message, never a crash."""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from pydantic import ValidationError

from .backend import Api, McpToolError
from .event_tools import EVENT_TOOLS
from .tools import TOOLS, Tool

log = logging.getLogger("trigger_do.mcp")
INSTRUCTIONS = (
    "trigger.do runs background jobs (Trigger.dev's API). Use get_tasks to see the tasks, "
    "get_task_schema for a payload's shape, trigger_task to start a run, "
    "wait_for_run_to_complete or get_run_details to follow it."
)


def tools_for(readonly: bool) -> list[Tool]:
    return [t for t in (*TOOLS, *EVENT_TOOLS) if t.read_only or not readonly]


def describe(t: Tool) -> types.Tool:
    schema = t.args.model_json_schema(by_alias=True)
    schema.pop("title", None)
    return types.Tool(
        name=t.name,
        description=t.description,
        input_schema=schema,
        annotations=types.ToolAnnotations(
            read_only_hint=t.read_only,
            destructive_hint=t.destructive if not t.read_only else None,
        ),
    )


def _bad_arguments(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid arguments: " + "; ".join(parts)


def build_server(api: Api, *, readonly: bool = False, lifespan: Any = None) -> Server[Any]:
    """The MCP server whose tools call `api`; with `readonly`, only the tools that write
    nothing."""
    tools = {t.name: t for t in tools_for(readonly)}

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[describe(t) for t in tools.values()])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            hidden = " (hidden: this server is --readonly)" if readonly else ""
            return _error(f"unknown tool {params.name!r}{hidden}")
        try:
            args = tool.args.model_validate(params.arguments or {})
            said, data = await tool.run(api, args)
        except ValidationError as exc:
            return _error(_bad_arguments(exc))
        except McpToolError as exc:
            return _error(str(exc))
        except Exception as exc:  # a bug of ours: said, and the server goes on
            log.exception("MCP tool %s failed", params.name)
            return _error(f"{params.name} failed: {type(exc).__name__}: {exc}")
        structured = data if isinstance(data, dict) else {"result": data}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=said)], structured_content=structured
        )

    options: dict[str, Any] = {"lifespan": lifespan} if lifespan is not None else {}
    return Server(
        "trigger.do",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        **options,
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )
