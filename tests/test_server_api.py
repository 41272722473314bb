"""The official openai SDK and plain HTTP against a running `spud serve` on replay models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from server_fixtures import ADMIN_PASSWORD, ServerProc, replay_file, sse_events, start_server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANSWER = "Hello from Spud, streamed in small pieces to the client."

pytestmark = pytest.mark.databases(scope="module")  # one server on SQLite, one on PostgreSQL


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("server")
    agent = replay_file(
        tmp / "agent.json",
        [
            {"calls": [{"name": "bash", "arguments": {"command": "echo made > out.txt"}}]},
            {"calls": [{"name": "finish", "arguments": {"summary": "wrote out.txt"}}]},
        ],
    )
    chat = replay_file(tmp / "chat.json", [{"answer": ANSWER}])
    tools = replay_file(
        tmp / "tools.json",
        [
            {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"answer": "It is 21 degrees in Paris."},
        ],
    )
    env = {
        "SPUD_MODEL": agent,
        "SPUD_SERVER_MODELS": json.dumps([chat, tools]),
        "SPUD_SERVER_MAX_BODY_BYTES": "200000",
        "SPUD_DB_URL": module_db_url,
    }
    s = start_server(tmp / "home", env)
    s.extra.update(agent=agent, chat=chat, tools=tools)
    yield s
    s.stop()


def test_models_are_listed(server: ServerProc) -> None:
    ids = [m.id for m in server.openai().models.list()]
    assert ids[0] == "spud-agent"
    assert {server.extra["agent"], server.extra["chat"], server.extra["tools"]} <= set(ids)


def test_a_completion_has_the_answer_and_its_usage(server: ServerProc) -> None:
    resp = server.openai().chat.completions.create(
        model=server.extra["chat"], messages=[{"role": "user", "content": "Say hello"}]
    )
    choice = resp.choices[0]
    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_a_streamed_completion_arrives_in_pieces_with_usage_last(server: ServerProc) -> None:
    stream = server.openai().chat.completions.create(
        model=server.extra["chat"],
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1
    assert "".join(pieces) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_a_forwarded_proto_from_a_local_peer_counts_only_with_trust_proxy(
    server: ServerProc,
) -> None:
    # uvicorn alone would believe X-Forwarded-* from any local peer; Spud's trust_proxy decides
    r = httpx.post(
        f"{server.url}/auth/login",
        json={"username": "admin", "password": ADMIN_PASSWORD},
        headers={"x-forwarded-proto": "https", "x-forwarded-for": "192.0.2.7"},
    )
    assert r.status_code == 200, r.text
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("spud_session="))
    attributes = {part.split("=")[0].strip().lower() for part in cookie.split(";")[1:]}
    assert "secure" not in attributes


def test_a_tool_call_round_trip(server: ServerProc) -> None:
    client = server.openai()
    messages: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model=server.extra["tools"], messages=messages, tools=[WEATHER], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'},
    ]
    second = client.chat.completions.create(
        model=server.extra["tools"], messages=messages, tools=[WEATHER]
    )
    assert second.choices[0].message.content == "It is 21 degrees in Paris."
    assert second.choices[0].finish_reason == "stop"


def test_a_tool_call_streams_as_a_tool_call_delta(server: ServerProc) -> None:
    stream = server.openai().chat.completions.create(
        model=server.extra["tools"],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        stream=True,
    )
    calls = [tc for c in stream for tc in (c.choices[0].delta.tool_calls or []) if c.choices]
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_spud_agent_runs_a_turn_in_the_workspace_and_streams_the_answer(
    server: ServerProc,
) -> None:
    stream = server.openai().chat.completions.create(
        model="spud-agent", messages=[{"role": "user", "content": "Write out.txt"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "wrote out.txt"
    with server.client() as http:
        chats = http.get("/api/sessions", params={"kind": "chat"}).json()
        assert chats and chats[0]["summary"] == "wrote out.txt"
        made = http.get("/api/files/download", params={"path": "default/out.txt"})
        assert made.status_code == 200 and made.text == "made\n"


def test_malformed_json_is_400_with_a_clear_message(server: ServerProc) -> None:
    with server.client() as http:
        r = http.post(
            "/v1/chat/completions",
            content=b'{"model": "x", "messages": [',
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_a_body_that_breaks_the_schema_is_422_naming_the_field(server: ServerProc) -> None:
    with server.client() as http:
        r = http.post("/v1/chat/completions", json={"model": server.extra["chat"]})
    assert r.status_code == 422
    assert "messages" in r.json()["error"]["message"]


def test_an_unknown_model_is_404_model_not_found(server: ServerProc) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        server.openai().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message


def test_an_oversized_body_is_413(server: ServerProc) -> None:
    big = "x" * 300_000
    with server.client() as http:
        r = http.post(
            "/v1/chat/completions",
            json={"model": server.extra["chat"], "messages": [{"role": "user", "content": big}]},
        )
    assert r.status_code == 413
    assert "200000 bytes" in r.json()["error"]["message"]


def test_without_a_key_or_with_a_wrong_one_it_is_401(server: ServerProc) -> None:
    with pytest.raises(openai.AuthenticationError):
        server.openai(key="spud_wrong").models.list()
    assert httpx.get(f"{server.url}/api/tasks").status_code == 401
    assert httpx.get(f"{server.url}/openapi.json").status_code in (401, 404)


def test_a_task_streams_its_steps_waits_for_approval_and_finishes(server: ServerProc) -> None:
    policy = {"rules": [{"tool": "bash", "action": "ask"}], "default_action": "auto"}
    with server.client() as http:
        created = http.post(
            "/api/tasks", json={"prompt": "Write out.txt", "workspace": "t1", "policy": policy}
        )
        assert created.status_code == 201, created.text
        task = created.json()
        kinds = []
        with http.stream("GET", f"/api/tasks/{task['id']}/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            for e in sse_events(events):
                kinds.append(e["event"])
                if e["event"] == "approval":
                    assert e["data"]["tool"] == "bash"
                    assert e["data"]["arguments"] == {"command": "echo made > out.txt"}
                    approval = e["data"]["id"]
                    decided = http.post(f"/api/approvals/{approval}", json={"decision": "allow"})
                    assert decided.status_code == 200
                if e["event"] == "result" and e["data"]["name"] == "bash":
                    assert e["data"]["ok"] is True and e["data"]["approval"] == "allow"
                if e["event"] == "finish":
                    assert e["data"]["status"] == "finished"
                    assert e["data"]["summary"] == "wrote out.txt"
        assert kinds.index("approval") < kinds.index("result") < kinds.index("finish")
        assert kinds.count("step") == 2 and kinds[-1] == "finish"
        done = http.get(f"/api/tasks/{task['id']}").json()
        assert done["status"] == "finished" and done["steps"] == 2
        late = http.post(f"/api/approvals/{approval}", json={"decision": "deny"})
        assert late.status_code == 409 and "already allow" in late.json()["error"]["message"]
        out = http.get("/api/files/download", params={"path": "t1/out.txt"})
        assert out.text == "made\n"


def test_a_task_waiting_for_approval_can_be_cancelled(server: ServerProc) -> None:
    policy = {"rules": [], "default_action": "ask"}
    with server.client() as http:
        task = http.post("/api/tasks", json={"prompt": "Write it", "policy": policy}).json()
        with http.stream("GET", f"/api/tasks/{task['id']}/events") as events:
            for e in sse_events(events):
                if e["event"] == "approval":
                    cancelled = http.post(f"/api/tasks/{task['id']}/cancel")
                    assert cancelled.status_code == 200
                if e["event"] == "finish":
                    assert e["data"]["status"] == "cancelled"
        assert http.get(f"/api/tasks/{task['id']}").json()["status"] == "cancelled"
        approvals = http.get(f"/api/tasks/{task['id']}/approvals").json()
        assert [a["status"] for a in approvals] == ["expired"]
        again = http.post(f"/api/tasks/{task['id']}/cancel")
        assert again.status_code == 409


def test_bad_task_input_is_a_clear_4xx(server: ServerProc) -> None:
    with server.client() as http:
        escape = http.post("/api/tasks", json={"prompt": "x", "workspace": "../other"})
        assert escape.status_code == 400 and "'..'" in escape.json()["error"]["message"]
        model = http.post("/api/tasks", json={"prompt": "x", "model": "nope"})
        assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"
        empty = http.post("/api/tasks", json={"prompt": "  "})
        assert empty.status_code == 400


def test_the_first_run_printed_the_admin_login(server: ServerProc, tmp_path: Path) -> None:
    log = server.log.read_text()
    assert "created the admin admin" in log and "http://127.0.0.1:" in log


def test_a_spud_agent_chat_goes_on_in_the_same_session(server: ServerProc) -> None:
    client = server.openai()
    first = client.chat.completions.create(
        model="spud-agent", messages=[{"role": "user", "content": "First question"}]
    )
    session = first.model_extra["spud_session_id"]
    second = client.chat.completions.create(
        model="spud-agent",
        messages=[{"role": "user", "content": "Second question"}],
        extra_body={"session_id": session},
    )
    assert second.model_extra["spud_session_id"] == session
    with server.client() as http:
        messages = http.get(f"/api/sessions/{session}").json()["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert users == ["First question", "Second question"]
        unknown = http.post(
            "/v1/chat/completions",
            json={
                "model": "spud-agent",
                "messages": [{"role": "user", "content": "hi"}],
                "session_id": "0" * 32,
            },
        )
        assert unknown.status_code == 404
