"""The model layer: registry and sha256 checks, tool-call parsing, remote adapters' shapes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the openai and anthropic SDKs are built on httpx2
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spud.config import Settings
from spud.core.errors import FormatError, ModelNotFound
from spud.core.messages import Message, ToolCall
from spud.core.protocols import ToolSpec
from spud.models.loader import load_model
from spud.models.local import render_chatml
from spud.models.registry import REGISTRY, get_spec, pull, verify
from spud.models.toolcall import parse_calls

SPEC = ToolSpec(
    name="write_file",
    description="Write a file.",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
        "additionalProperties": False,
    },
)


def test_registry_pins_every_model():
    assert {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m"} <= set(REGISTRY)
    for spec in REGISTRY.values():
        assert len(spec.sha256) == 64 and spec.sources
    with pytest.raises(ModelNotFound, match="known models"):
        get_spec("gpt-17")


def test_pull_assembles_verifies_and_refuses_a_corrupt_file(tmp_path: Path):
    spec = REGISTRY["smollm2-135m"]
    path = pull(spec, tmp_path)
    assert path.stat().st_size > 50_000_000
    assert verify(spec, path) == path
    with path.open("r+b") as f:  # flip one byte in the middle
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelNotFound, match="corrupt"):
        pull(spec, tmp_path)


def test_a_verified_model_is_hashed_again_only_when_its_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from spud.models import registry

    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"weights " * 1000)
    spec = REGISTRY["smollm2-135m"].model_copy(
        update={"sha256": registry.sha256_file(path), "filename": path.name}
    )
    hashed: list[Path] = []
    real_hash = registry.sha256_file
    monkeypatch.setattr(
        registry, "sha256_file", lambda p, pr=None: hashed.append(p) or real_hash(p)
    )
    assert verify(spec, path) == path and verify(spec, path) == path
    assert hashed == [path]  # the second start trusts the record beside the file
    stat = path.stat()
    with path.open("r+b") as f:  # same size, one byte changed, mtime put back
        f.write(b"W")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(ModelNotFound, match="corrupt"):
        verify(spec, path)
    assert hashed == [path, path]
    path.write_bytes(b"weights " * 1000)
    assert verify(spec, path) == path
    other = spec.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelNotFound, match="corrupt"):  # a record vouches for one sha256
        verify(other, path)
    assert hashed == [path] * 4


def test_pull_reports_every_failed_source(tmp_path: Path):
    spec = REGISTRY["smollm2-135m"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelNotFound, match="could not get smollm2-135m"):
        pull(spec, tmp_path)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob("*.partial"))


def test_loader_errors_are_clear(tmp_path: Path):
    settings = Settings(home=tmp_path, model_cache=tmp_path / "models")
    with pytest.raises(ModelNotFound, match="unknown model 'nope'"):
        load_model("nope", settings)
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_model(str(tmp_path / "missing.gguf"), settings)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(ModelNotFound, match="cannot load model file"):
        load_model(str(bad), settings)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "write_file", "arguments": {"path": "a.py", "content": "x"}}',
        '```json\n{"name": "write_file", "arguments": {"path": "a.py", "content": "x"}}\n```',
        '<tool_call>\n{"name": "write_file", "arguments": {"path": "a.py", "content": "x"}}\n</tool_call>',
        'Sure! ```{"name": "write_file", "arguments": "{\\"path\\": \\"a.py\\", \\"content\\": \\"x\\"}"}```',
    ],
)
def test_parse_calls_accepts_common_shapes(text: str):
    [call] = parse_calls(text, [SPEC])
    assert call.name == "write_file" and call.arguments == {"path": "a.py", "content": "x"}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("I will write the file now.", "not valid JSON"),
        ('{"name": "delete_all", "arguments": {}}', "no tool named 'delete_all'"),
        (
            '{"name": "write_file", "arguments": {"path": "a.py"}}',
            "'content' is a required property",
        ),
        ('{"name": "write_file", "arguments": {"path": 3, "content": "x"}}', "path"),
        ('{"tool": "write_file"}', '"name" and "arguments"'),
    ],
)
def test_parse_calls_rejects_with_a_useful_problem(text: str, problem: str):
    with pytest.raises(FormatError) as info:
        parse_calls(text, [SPEC])
    assert problem in info.value.problem and info.value.raw == text


def test_chatml_prompt_is_append_only():
    msgs = [Message(role="system", content="sys"), Message(role="user", content="task")]
    before = render_chatml(msgs, [SPEC])
    call = ToolCall(name="write_file", arguments={"path": "a", "content": "b"})
    msgs += [
        Message(role="assistant", tool_calls=[call], meta={"raw": json.dumps(call.model_dump())}),
        Message(role="tool", tool_call_id=call.id, content="ok"),
    ]
    after = render_chatml(msgs, [SPEC])
    assert after.startswith(before)
    assert "<tool_response>\nok\n</tool_response>" in after
    assert '"name":"write_file"' in before  # tools are described in the system turn


def _openai_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    assert body["tools"][0]["function"]["name"] == "write_file"
    assert body["messages"][-1]["role"] == "tool"
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "write_file",
                                    "arguments": '{"path": "b.py", "content": "y"}',
                                },
                            }
                        ],
                    },
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
        },
    )


def _history() -> list[Message]:
    call = ToolCall(id="call_0", name="write_file", arguments={"path": "a", "content": "b"})
    return [
        Message(role="system", content="sys"),
        Message(role="user", content="task"),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", tool_call_id="call_0", content="wrote a"),
    ]


def test_openai_adapter_uses_native_tool_calls():
    import openai

    from spud.models.openai_compat import OpenAICompatModel

    client = openai.OpenAI(
        api_key="k",
        base_url="http://test/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(_openai_reply)),
    )
    model = OpenAICompatModel("any-model", client=client)
    reply = model.complete(_history(), [SPEC])
    [call] = reply.message.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_1",
        "write_file",
        {"path": "b.py", "content": "y"},
    )
    assert reply.usage.prompt_tokens == 40 and reply.usage.completion_tokens == 9


def test_anthropic_adapter_merges_tool_results_and_reads_tool_use():
    import anthropic

    from spud.models.anthropic import AnthropicModel

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["system"] == "sys"
        assert body["messages"][-1]["content"][0]["type"] == "tool_result"
        assert body["tools"][0]["input_schema"]["required"] == ["path", "content"]
        return httpx.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "stop_reason": "tool_use",
                "content": [
                    {"type": "text", "text": "Writing it."},
                    {
                        "type": "tool_use",
                        "id": "tu_1",
                        "name": "write_file",
                        "input": {"path": "c", "content": "z"},
                    },
                ],
                "usage": {"input_tokens": 50, "output_tokens": 12},
            },
        )

    client = anthropic.Anthropic(
        api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    reply = AnthropicModel("claude-x", client=client).complete(_history(), [SPEC])
    assert reply.message.content == "Writing it."
    assert reply.message.tool_calls[0].arguments == {"path": "c", "content": "z"}
    assert reply.usage.prompt_tokens == 50


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_call_or_a_format_error(text: str):
    """Whatever a model emits, parsing never crashes: it is a valid call or a FormatError."""
    try:
        calls = parse_calls(text, [SPEC])
    except FormatError as exc:
        assert exc.problem and exc.raw == text
    else:
        assert all(c.name == "write_file" for c in calls)


@settings(max_examples=200, deadline=None)
@given(path=st.text(min_size=1, max_size=40), content=st.text(max_size=200), fence=st.booleans())
def test_valid_calls_round_trip(path: str, content: str, fence: bool):
    body = json.dumps({"name": "write_file", "arguments": {"path": path, "content": content}})
    [call] = parse_calls(f"```json\n{body}\n```" if fence else body, [SPEC])
    assert call.arguments == {"path": path, "content": content}


def test_model_service_errors_end_the_run_with_a_resumable_status(store):
    import openai

    from spud.core.agent import Agent
    from spud.models.openai_compat import OpenAICompatModel

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, json={"error": {"message": "overloaded", "type": "server_error"}}
        )

    client = openai.OpenAI(
        api_key="k",
        base_url="http://test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(down)),
    )
    agent = Agent(OpenAICompatModel("m", client=client), [], store)
    sid = agent.start("task", "/tmp")
    result = agent.run(sid)
    assert result.status == "model_error"
    assert "openai:m failed" in result.summary and "resume" in result.summary
    assert store.get_session(sid).status == "model_error"


def test_a_draft_stops_after_its_python_block_not_a_shell_one():
    from spud.models.local import block_closed

    assert block_closed("Fix the sign.\n```python\ndef add(a, b):\n    return a + b\n```\n")
    assert not block_closed("```python\ndef add(a, b):\n")  # still open
    assert not block_closed("First install it:\n```bash\npip install openpyxl\n```\n")
    assert not block_closed("It fails with:\n```\nKeyError: 'C3'\n```\n")  # a quote, not code
    assert block_closed("```\nKeyError\n```\nSo:\n```python\nprint(1)\n```\n")


class StreamingLlama:
    """llama.cpp's streamed completion, one word per piece; counts what was generated."""

    def __init__(self, text: str) -> None:
        self.words = text.split(" ")
        self.generated = 0
        self._input_ids = numpy.array([], dtype=numpy.intc)

    def create_completion(self, tokens: list[int], stream: bool = False, **kw: Any):
        for i, word in enumerate(self.words):
            self.generated += 1
            yield {"choices": [{"text": word if i == 0 else " " + word}]}


def test_a_reply_that_repeats_one_sentence_is_cut_after_a_few_copies():
    """A 1.5B spent 127 s repeating "The error occurs because ..." to the 2048-token cap."""
    from spud.models.local import LocalModel

    sentence = "The error occurs because the function expects an integer, not a string."
    llm = StreamingLlama("It fails. " + " ".join([sentence] * 60))
    model = LocalModel.__new__(LocalModel)  # the generation loop without loading weights
    model.llm, model.temperature = llm, 0.0
    model.tokenize = lambda text: text.split()
    reply = model.chat([Message(role="user", content="Why does it fail?")])
    assert reply.message.content.count(sentence) == 1
    assert llm.generated < 5 * len(sentence.split()) + 10  # not the 60 copies
    # a reply that does not repeat itself is read to its end, and so is a line of one character
    # (checked every 8 pieces: the 8th and 16th end with the ruler and the table rule)
    ruler = (
        'It prints a short plain report:\n```python\nprint("header") print(1) print("' + "=" * 80
    )
    ruler += ' ") print("a") print("b") print(2) print(3) print(4) print(5) print("' + "|---" * 30
    ruler += ' ") print(5)'
    model.llm = StreamingLlama(ruler)
    assert model.chat([Message(role="user", content="Report?")]).message.content == ruler
    varied = " ".join(f"Step {i}: move file number {i} into its folder." for i in range(60))
    model.llm = StreamingLlama(varied)
    assert model.chat([Message(role="user", content="Plan?")]).message.content == varied
