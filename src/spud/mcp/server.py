"""Spud as an MCP server: its tools and a run_task tool, over stdio or streamable HTTP."""

from __future__ import annotations

import mimetypes
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import anyio
import anyio.from_thread
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from pydantic import BaseModel, Field, ValidationError

from spud import __version__
from spud import toolsets as registry
from spud.core.errors import SpudError
from spud.core.messages import Message
from spud.core.protocols import Model
from spud.mcp.server_tools import (
    Bench,
    BenchSpec,
    changed,
    error_result,
    served_sets,
    snapshot,
)
from spud.memory.store import LOCAL_ORG, LOCAL_USER
from spud.service.modelpool import CancellableModel, Cancelled
from spud.service.sessions import RunSpec, SessionService, check_workspace

INSTRUCTIONS = (
    "Spud's tools work in a workspace folder: read, search, write and edit files, run commands "
    "in a sandbox, office files, memory recall. run_task hands a whole task to Spud's own agent "
    "and returns its result and the files it made. Calls the approval policy would ask a person "
    "about are refused here, with the reason."
)
MAX_BENCHES = 16  # tools kept open over this many (user, workspace) pairs; the oldest closes
MAX_LINKS = 50  # files linked in a run_task result


class RunTaskArgs(BaseModel):
    """run_task's arguments (over HTTP also `workspace`)."""

    model_config = {"extra": "forbid"}

    task: str = Field(min_length=1, max_length=100_000, description="What Spud should do.")
    model: str | None = Field(
        None, max_length=200, description="A model name; the configured model when left out."
    )
    tools: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Extra tool sets for the run (office, browser, ...); files and shell are on.",
    )
    max_steps: int | None = Field(None, ge=1, le=500, description="At most this many steps.")
    workspace: str | None = Field(None, max_length=500, exclude=True)


FILE_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer"},
        "uri": {"type": "string"},
    },
    "required": ["path", "size", "uri"],
}
RUN_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "summary": {"type": "string"},
        "session_id": {"type": "string"},
        "steps": {"type": "integer"},
        "files": {"type": "array", "items": FILE_SCHEMA},
    },
    "required": ["status", "summary", "session_id", "steps", "files"],
}
WORKSPACE_ARG = {
    "type": "string",
    "maxLength": 500,
    "description": "A folder of your organisation's workspaces (default: 'default').",
}


@dataclass(frozen=True)
class Caller:
    """Who a call is for."""

    user_id: str = LOCAL_USER
    org_id: str = LOCAL_ORG
    can_write: bool = True
    base_url: str = ""


class Backend(Protocol):
    """Where the tools work and for whom: one folder (stdio) or an organisation's (HTTP)."""

    service: SessionService
    named_workspaces: bool  # tools take a `workspace` argument

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller: ...

    def workspace(self, caller: Caller, name: str | None) -> Path: ...

    def link(self, caller: Caller, workspace: Path, relative: str) -> str: ...

    def model(self, name: str | None) -> Model: ...

    def started(self, caller: Caller, session_id: str) -> None: ...


class LocalBackend:
    """stdio: one workspace folder, the local user, the configured models."""

    named_workspaces = False

    def __init__(self, service: SessionService, workspace: Path) -> None:
        self.service = service
        self.root = check_workspace(workspace)

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        return Caller()

    def workspace(self, caller: Caller, name: str | None) -> Path:
        return self.root

    def link(self, caller: Caller, workspace: Path, relative: str) -> str:
        return (workspace / relative).as_uri()

    def model(self, name: str | None) -> Model:
        return self.service.model(name)

    def started(self, caller: Caller, session_id: str) -> None:
        pass


class SpudMcp:
    """The MCP server: Spud's tools (by bench, per caller and workspace) and run_task."""

    def __init__(
        self, backend: Backend, toolsets: list[str] | None = None, auto_approve: bool = False
    ) -> None:
        self.backend = backend
        self.service = backend.service
        self.settings = self.service.settings
        self.sets = served_sets(self.settings, toolsets)
        self.auto_approve = auto_approve
        self._benches: OrderedDict[tuple[str, str, str], Bench] = OrderedDict()
        self._lock = threading.Lock()
        self.server: Server[Any] = Server(
            "spud",
            version=__version__,
            title="Spud",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # -- benches ------------------------------------------------------------------------

    def bench(self, caller: Caller, workspace: Path) -> Bench:
        """The tools over this workspace for this caller (built once, kept a while)."""
        key = (caller.org_id, caller.user_id, str(workspace))
        with self._lock:
            bench = self._benches.get(key)
            if bench is not None:
                self._benches.move_to_end(key)
                return bench
        bench = Bench(
            BenchSpec(
                settings=self.settings,
                workspace=workspace,
                sets=self.sets,
                user_id=caller.user_id,
                org_id=caller.org_id,
                policy=self.service.default_policy(),
                memory=self.service.memory,
                auto_approve=self.auto_approve,
            )
        )
        old: list[Bench] = []
        with self._lock:
            kept = self._benches.setdefault(key, bench)
            if kept is not bench:  # built twice at once: keep the first
                old.append(bench)
            while len(self._benches) > MAX_BENCHES:
                old.append(self._benches.popitem(last=False)[1])
        for b in old:
            b.close()
        return kept

    def close(self) -> None:
        """Close every bench (the browser and whatever else the tools hold)."""
        with self._lock:
            benches = list(self._benches.values())
            self._benches.clear()
        for b in benches:
            b.close()

    # -- the protocol's handlers ---------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caller = self.backend.caller(ctx)
        workspace = await anyio.to_thread.run_sync(self._listing_workspace, caller)
        bench = await anyio.to_thread.run_sync(self.bench, caller, workspace)
        tools = [self.run_task_tool(), *bench.listing()]
        if self.backend.named_workspaces:
            tools = [with_workspace_arg(t) for t in tools]
        return types.ListToolsResult(tools=tools)

    def _listing_workspace(self, caller: Caller) -> Path:
        return self.backend.workspace(caller, None)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = self.backend.caller(ctx)
        arguments = dict(params.arguments or {})
        name = arguments.pop("workspace", None) if self.backend.named_workspaces else None
        if name is not None and not isinstance(name, str):
            return error_result("workspace must be a folder name (a string)")
        if params.name == "run_task":
            return await self.run_task(ctx, caller, arguments, name)
        try:
            workspace = await anyio.to_thread.run_sync(self.backend.workspace, caller, name)
        except SpudError as exc:
            return error_result(str(exc))
        bench = await anyio.to_thread.run_sync(self.bench, caller, workspace)
        return await bench.call(params.name, arguments, caller.can_write)

    # -- run_task ----------------------------------------------------------------------

    def run_task_tool(self) -> types.Tool:
        schema = RunTaskArgs.model_json_schema()
        schema["properties"].pop("workspace", None)
        for prop in schema["properties"].values():
            prop.pop("title", None)
            if "anyOf" in prop:  # optional: the plain type
                prop.update(next(o for o in prop.pop("anyOf") if o != {"type": "null"}))
                prop.pop("default", None)
        schema.pop("title", None)
        return types.Tool(
            name="run_task",
            description=(
                "Run a whole task with Spud's own agent in the workspace (files, shell, and "
                "the sets the task needs) and return its result and the files it made or "
                "changed. Reports progress after each step."
            ),
            input_schema=schema,
            output_schema=RUN_OUTPUT_SCHEMA,
            annotations=types.ToolAnnotations(
                title="Run a Spud task",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                open_world_hint=False,
            ),
        )

    async def run_task(
        self,
        ctx: ServerRequestContext[Any, Any],
        caller: Caller,
        arguments: dict[str, Any],
        workspace_name: str | None,
    ) -> types.CallToolResult:
        """Run a task through the one entry point, a progress notification per step."""
        try:
            args = RunTaskArgs.model_validate(arguments)
            registry.check(args.tools)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            return error_result(f"invalid arguments for run_task: {problems}")
        except SpudError as exc:
            return error_result(str(exc))
        if not caller.can_write:
            return error_result("Not run: run_task changes things, and viewers can only read.")
        stop = threading.Event()
        total = float(args.max_steps or self.settings.limits.max_steps)
        steps = 0

        def on_message(message: Message) -> None:
            nonlocal steps
            if message.role != "assistant" or stop.is_set():
                return
            steps += 1
            calls = ", ".join(c.name for c in message.tool_calls) or "a reply"
            try:
                anyio.from_thread.run(
                    ctx.session.report_progress, float(steps), total, f"step {steps}: {calls}"
                )
            except Exception:  # the caller went away: the run goes on, unreported
                pass

        def work() -> types.CallToolResult:
            workspace = self.backend.workspace(caller, workspace_name)
            before = snapshot(workspace)
            limits = None
            if args.max_steps:
                limits = self.settings.limits.model_copy(update={"max_steps": args.max_steps})
            started: list[str] = []

            def on_session(session_id: str) -> None:
                started.append(session_id)
                self.backend.started(caller, session_id)

            spec = RunSpec(
                workspace=workspace,
                task=args.task,
                model=CancellableModel(self.backend.model(args.model), stop.is_set),
                toolsets=args.tools,
                auto_approve=self.auto_approve,
                limits=limits,
                user_id=caller.user_id,
                org_id=caller.org_id,
                on_message=on_message,
                on_session=on_session,
            )
            try:
                result = self.service.execute(spec)
            except Cancelled:  # the caller cancelled: the session says so, as a task's does
                for sid in started:
                    self.service.store.update_session(
                        sid, status="cancelled", summary="cancelled by the MCP client"
                    )
                raise
            files = changed(before, snapshot(workspace))
            return self._run_result(caller, workspace, result, files)

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except SpudError as exc:
            return error_result(str(exc))
        except Cancelled:
            return error_result("run_task was cancelled")
        finally:
            stop.set()  # a cancelled call stops its run at the next step

    def _run_result(
        self, caller: Caller, workspace: Path, result: Any, files: list[str]
    ) -> types.CallToolResult:
        shown = []
        links: list[types.ContentBlock] = []
        for rel in files:
            path = workspace / rel
            size = path.stat().st_size if path.exists() else 0
            uri = self.backend.link(caller, workspace, rel)
            shown.append({"path": rel, "size": size, "uri": uri})
            if len(links) < MAX_LINKS:
                links.append(
                    types.ResourceLink(
                        type="resource_link",
                        name=rel,
                        uri=uri,
                        size=size,
                        mime_type=mimetypes.guess_type(rel)[0] or "application/octet-stream",
                    )
                )
        text = (
            f"{result.status}: {result.summary}\n{result.steps} steps, session {result.session_id}"
        )
        text += "\nfiles made or changed: " + (", ".join(files) if files else "none")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text), *links],
            structured_content={
                "status": result.status,
                "summary": result.summary,
                "session_id": result.session_id,
                "steps": result.steps,
                "files": shown,
            },
            is_error=result.status != "finished",
        )


def with_workspace_arg(tool: types.Tool) -> types.Tool:
    """The tool with an optional `workspace` argument (HTTP: the organisation's folders)."""
    schema = dict(tool.input_schema)
    schema["properties"] = {**schema.get("properties", {}), "workspace": WORKSPACE_ARG}
    return tool.model_copy(update={"input_schema": schema})


def download_link(base_url: str, org_root: Path, path: Path) -> str:
    """A file of the organisation's workspaces as the API's download URL."""
    relative = path.relative_to(org_root).as_posix()
    return f"{base_url.rstrip('/')}/api/files/download?path={quote(relative, safe='')}"


async def serve_stdio(mcp: SpudMcp) -> None:
    """Serve on this process's stdin and stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await mcp.server.run(read, write, mcp.server.create_initialization_options())
