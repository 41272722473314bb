"""The openai SDK against `spud serve` on the real embedded model (qwen2.5-coder-0.5b)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from server_fixtures import ServerProc, start_server

pytestmark = pytest.mark.model
MODEL = "qwen2.5-coder-0.5b"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name."}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    env = {"SPUD_MODEL": MODEL, "SPUD_THREADS": "2", "SPUD_CONTEXT_WINDOW": "4096"}
    s = start_server(tmp_path_factory.mktemp("model") / "home", env)
    yield s
    s.stop()


def test_the_embedded_model_calls_a_tool_and_then_answers(server: ServerProc) -> None:
    client = server.openai()
    assert MODEL in [m.id for m in client.models.list()]
    messages: list = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    first = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "paris" in json.loads(call.function.arguments)["city"].lower()
    assert first.usage.prompt_tokens > 50 and first.usage.completion_tokens > 0
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21, "sky": "sunny"}'},
    ]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none", stream=True
    )
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "21" in answer
