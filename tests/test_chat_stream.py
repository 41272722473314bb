"""Chat answers plain questions in plain text, streamed piece by piece, with tool steps live."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file

from spud.config import Settings
from spud.core.agent import CHAT_PROMPT
from spud.core.messages import Message
from spud.models.local import LocalModel
from spud.models.replay import ReplayModel
from spud.server.app import create_app
from spud.service.hub import Services
from spud.service.sessions import RunSpec, SessionService
from spud.service.streaming import ChatStream

ANSWER = "2 + 3 is 5, as simple as that."
ECHO = {"calls": [{"name": "bash", "arguments": {"command": "echo hi"}}]}


@pytest.fixture
def svc(tmp_path: Path) -> SessionService:
    return SessionService(Settings(home=tmp_path / "home"))


def test_a_plain_question_gets_a_streamed_answer_and_no_tool_call(svc: SessionService, tmp_path):
    pieces: list[str] = []
    spec = RunSpec(
        workspace=tmp_path,
        task="What is 2 + 3?",
        model=ReplayModel([{"answer": ANSWER}]),
        chat=True,
        on_text=pieces.append,
    )
    result = svc.execute(spec)
    assert (result.status, result.summary) == ("finished", ANSWER)
    assert len(pieces) > 1 and "".join(pieces) == ANSWER
    messages = svc.messages(result.session_id)
    assert messages[0].content.startswith(CHAT_PROMPT)
    answer = [m for m in messages if m.role == "assistant"]
    assert len(answer) == 1 and answer[0].meta["text_answer"]  # a text reply, no call
    assert [m.name for m in messages if m.role == "tool"] == ["finish"]  # the loop's own end


def test_tool_steps_come_live_before_the_streamed_answer(svc: SessionService, tmp_path):
    events: list[dict[str, Any]] = []
    stream = ChatStream(events.append)
    spec = RunSpec(
        workspace=tmp_path,
        task="Say hi with bash",
        model=ReplayModel([ECHO, {"answer": "It said hi."}]),
        chat=True,
        auto_approve=True,
        on_text=stream.on_text,
        on_message=stream.on_message,
    )
    result = svc.execute(spec)
    assert result.summary == "It said hi."
    call, output, *text = events
    assert call == {"step": {"calls": [{"tool": "bash", "args": '{"command": "echo hi"}'}]}}
    assert output["step"]["tool"] == "bash" and "hi" in output["step"]["result"]
    assert [e["text"] for e in text] == ["It", " said", " hi."]
    assert stream.rest(result.summary) == ""  # all of it was streamed already


def test_an_answer_given_through_finish_is_not_counted_as_streamed():
    stream = ChatStream(lambda e: None)
    stream.on_text("a draft")
    stream.on_message(Message(role="assistant", tool_calls=[]))  # a step that was not the answer
    assert stream.rest("The answer.") == "The answer."


class FakeLlama:
    """llama.cpp's streamed completion, one piece per token."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def create_completion(self, tokens: list[int], stream: bool = False, **kw: Any):
        assert stream
        for i, p in enumerate(self.pieces):
            last = i == len(self.pieces) - 1
            yield {"choices": [{"text": p, "finish_reason": "stop" if last else None}]}

    def tokenize(self, data: bytes, **kw: Any) -> list[int]:
        return list(range(len(data.split())))


@pytest.mark.parametrize(
    ("pieces", "streamed"),
    [
        (["\n", "The", " answer", " is", " 5", "."], ["The", " answer", " is", " 5", "."]),
        (['{"name', '": "x"', "}"], []),  # a call is never shown as text
        (["<tool_call>", "\n{", "}"], []),
    ],
)
def test_the_local_model_streams_only_prose(pieces: list[str], streamed: list[str]) -> None:
    model = LocalModel.__new__(LocalModel)  # the generation loop without loading weights
    model.llm = FakeLlama(pieces)
    model.max_output_tokens, model.temperature = 64, 0.0
    model.tokenize = lambda text: text.split()
    got: list[str] = []
    text, finish, _ = model._generate([1, 2], None, got.append)
    assert got == streamed and text == "".join(pieces).strip() and finish == "stop"


def test_spud_agent_streams_steps_and_the_answer_in_pieces(tmp_path: Path) -> None:
    """What the web chat reads: spud_step chunks for the tools, then content in pieces."""
    model = replay_file(tmp_path / "agent.json", [ECHO, {"answer": ANSWER}])
    svc = Services(Settings(home=tmp_path / "home", model=model))
    ann = svc.users.add_user("ann", "password-123", "acme", "member")
    _, key = svc.users.create_key(ann.user_id)
    with TestClient(create_app(svc)) as client:
        body = {
            "model": "spud-agent",
            "stream": True,
            "messages": [{"role": "user", "content": "Say hi with bash"}],
        }
        r = client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert r.status_code == 200, r.text
    lines = [line.removeprefix("data: ") for line in r.text.splitlines()]
    chunks = [SimpleNamespace(**json.loads(x)) for x in lines if x.startswith("{")]
    steps = [c.spud_step for c in chunks if hasattr(c, "spud_step")]
    assert steps[0]["calls"][0]["tool"] == "bash" and steps[1]["ok"]
    content = [c.choices[0]["delta"].get("content") for c in chunks if c.choices]
    content = [c for c in content if c]
    assert len(content) > 1 and "".join(content) == ANSWER  # streamed once, not twice
    assert chunks[-1].spud_session_id


def test_chat_offers_the_file_writers_only_when_the_turn_asks_for_it(
    svc: SessionService, tmp_path: Path
) -> None:
    offered: list[frozenset[str]] = []

    class Watching(ReplayModel):
        def answer_or_call(self, messages, tools, exclude=frozenset(), on_text=None):
            offered.append(exclude)
            return super().answer_or_call(messages, tools, exclude, on_text)

    for task in ("What is 2 + 3?", "Write the sum to sum.txt"):
        spec = RunSpec(workspace=tmp_path, task=task, model=Watching([{"answer": "5"}]), chat=True)
        svc.execute(spec)
    plain, asked = offered
    assert {"write_file", "edit_file"} <= plain and "read_file" not in plain
    assert not {"write_file", "edit_file"} & asked
