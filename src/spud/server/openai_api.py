"""The OpenAI-compatible API: /v1/models and /v1/chat/completions (streaming or not)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spud.core.errors import ModelNotFound, SpudError
from spud.core.messages import Message, ToolCall, Usage
from spud.server.auth import Svc, User
from spud.server.errors import error_body
from spud.service import completions
from spud.service.chat import AGENT_MODEL
from spud.service.hub import Services
from spud.service.tasks import require_write
from spud.service.users import Principal

router = APIRouter(prefix="/v1", tags=["openai"])
KEEPALIVE_S = 10.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class FunctionCall(BaseModel):
    name: str = Field(max_length=200)
    arguments: str = ""


class ToolCallIn(BaseModel):
    id: str = Field(max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of the conversation, as OpenAI's Chat Completions API has it."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=200)
    name: str | None = None

    @model_validator(mode="after")
    def _tool_needs_id(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs tool_call_id")
        return self


class FunctionDef(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """A chat completion request; OpenAI parameters Spud does not use are accepted and ignored
    (sampling is the model's configuration). `session_id` continues a spud-agent chat,
    `spud_model` names the model its turn runs on, `regenerate` answers its last turn again."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=300)
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    session_id: str | None = Field(default=None, max_length=32)
    spud_model: str | None = Field(default=None, max_length=300)
    regenerate: bool = False


@router.get("/models")
def list_models(who: User, svc: Svc) -> dict[str, Any]:
    """The models this server offers: spud-agent (the whole agent) and raw model names."""
    names = [AGENT_MODEL, *svc.pool.names()]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "spud"} for n in names],
    }


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, who: User, svc: Svc) -> Any:
    """A completion from a raw model (tools passed through), or a whole agent turn."""
    require_write(who)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.model == AGENT_MODEL:
        return await _agent_turn(body, who, svc, cid)
    if not svc.pool.offers(body.model):
        raise ModelNotFound(
            f"The model {body.model!r} does not exist: see /v1/models for the models offered"
        )
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    tools = [t.model_dump() for t in body.tools or []]
    choice = (
        body.tool_choice.model_dump()
        if isinstance(body.tool_choice, BaseModel)
        else body.tool_choice
    )
    reply = await anyio.to_thread.run_sync(
        completions.complete, svc.pool, body.model, messages, tools, choice
    )
    usage = reply.usage
    if body.stream:  # the reply is whole: its events go out in one write, not one per piece
        events = "".join([part async for part in _chunks(cid, body, reply.message, usage)])
        return Response(events, media_type="text/event-stream", headers=SSE_HEADERS)
    return _completion(cid, body.model, reply.message, usage)


async def _agent_turn(body: ChatRequest, who: Principal, svc: Services, cid: str) -> Any:
    """Run one agent turn on a worker; the answer is the finish summary."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # answer text and tool steps
    on_event = (lambda e: loop.call_soon_threadsafe(events.put_nowait, e)) if body.stream else None
    if body.regenerate:
        if body.session_id is None:
            raise SpudError("regenerate needs the session_id of the chat to answer again")
        future = svc.chat.regenerate(who, body.session_id, on_event, body.spud_model)
    else:
        users = [i for i, m in enumerate(body.messages) if m.role == "user"]
        if not users:
            raise SpudError("spud-agent needs a user message")
        text = completions.text_of(body.messages[users[-1]].content)
        history = ""
        if body.session_id is None:
            earlier = [
                f"{m.role}: {completions.text_of(m.content)}"
                for m in body.messages[: users[-1]]
                if m.role in ("user", "assistant") and m.content
            ]
            history = "Earlier in this conversation:\n" + "\n".join(earlier) if earlier else ""
        future = svc.chat.turn(who, text, body.session_id, history, on_event, body.spud_model)
    if not body.stream:
        turn = await asyncio.wrap_future(future)
        result = _completion(
            cid, body.model, Message(role="assistant", content=turn.answer), turn.usage
        )
        result["spud_session_id"] = turn.session_id
        result["spud_status"] = turn.status
        return result

    async def stream() -> AsyncIterator[str]:
        yield _data(_chunk(cid, body.model, {"role": "assistant", "content": ""}))
        waiting = asyncio.wrap_future(future)
        while not waiting.done() or not events.empty():
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait(
                {getter, waiting}, timeout=KEEPALIVE_S, return_when="FIRST_COMPLETED"
            )
            if getter in done:
                yield _data(_event_chunk(cid, body.model, getter.result()))
                continue
            getter.cancel()
            if not done:
                yield ": working\n\n"  # a comment line keeps proxies from closing the stream
        try:
            turn = waiting.result()
        except Exception as exc:  # the status line is sent: report it in the stream
            message = str(exc) if isinstance(exc, SpudError) else type(exc).__name__
            yield _data(error_body(500, f"the agent turn failed: {message}", "agent_error"))
            return
        message = Message(role="assistant", content=turn.rest)  # the answer's unstreamed rest
        async for part in _chunks(
            cid, body, message, turn.usage, role=False, session=turn.session_id, status=turn.status
        ):
            yield part

    return _sse(stream())


def _completion(cid: str, model: str, message: Message, usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.content or None}
    if message.tool_calls:
        out["tool_calls"] = [_call(c) for c in message.tool_calls]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out,
                "finish_reason": "tool_calls" if message.tool_calls else "stop",
            }
        ],
        "usage": _usage(usage),
    }


def _call(c: ToolCall, index: int | None = None) -> dict[str, Any]:
    call = {
        "id": c.id,
        "type": "function",
        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
    }
    return call if index is None else {"index": index, **call}


def _usage(u: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def _chunk(
    cid: str, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _event_chunk(cid: str, model: str, event: dict[str, Any]) -> dict[str, Any]:
    """An agent turn's event as a chunk: answer text as content, a tool step as spud_step,
    the turn's session (known before its first step) as spud_session_id."""
    if "text" in event:
        return _chunk(cid, model, {"content": event["text"]})
    chunk = _chunk(cid, model, {})
    if "session" in event:
        chunk["spud_session_id"] = event["session"]
    else:
        chunk["spud_step"] = event["step"]
    return chunk


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def pieces(text: str) -> list[str]:
    """The answer in small pieces (a few words each), as a streaming model would send it."""
    return re.findall(r"\S+\s*(?:\S+\s*){0,3}|\s+", text) or [text]


async def _chunks(
    cid: str,
    body: ChatRequest,
    message: Message,
    usage: Usage,
    role: bool = True,
    session: str | None = None,
    status: str | None = None,
) -> AsyncIterator[str]:
    if role:
        yield _data(_chunk(cid, body.model, {"role": "assistant", "content": ""}))
    for piece in pieces(message.content) if message.content else []:
        yield _data(_chunk(cid, body.model, {"content": piece}))
    if message.tool_calls:
        calls = [_call(c, i) for i, c in enumerate(message.tool_calls)]
        yield _data(_chunk(cid, body.model, {"tool_calls": calls}))
    last = _chunk(cid, body.model, {}, "tool_calls" if message.tool_calls else "stop")
    if session:
        last["spud_session_id"] = session
    if status:
        last["spud_status"] = status  # how the agent turn ended: finished, stopped, limit:…
    yield _data(last)
    if body.stream_options and body.stream_options.include_usage:
        final = _chunk(cid, body.model, {})
        final["choices"] = []
        final["usage"] = _usage(usage)
        yield _data(final)
    yield "data: [DONE]\n\n"


def _sse(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
