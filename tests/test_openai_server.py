"""The OpenAI-compatible adapter against a real llama.cpp server serving the embedded model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spud.config import Settings
from spud.core.agent import Agent, Limits
from spud.core.messages import Message, ToolCall
from spud.core.tooling import tool_spec
from spud.models.openai_compat import OpenAICompatModel
from spud.models.registry import REGISTRY, pull
from spud.tools.files import ReadFile, WriteFile

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = pull(REGISTRY["qwen2.5-coder-0.5b"], Settings().model_cache)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--n_ctx", "4096", "--chat_format", "chatml-function-calling"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"llama.cpp server did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_trajectory_with_tool_results_is_accepted_by_a_real_server(server: str, tmp_path: Path):
    model = OpenAICompatModel("qwen", base_url=server, api_key="none", max_output_tokens=64)
    specs = [tool_spec(t) for t in (ReadFile(tmp_path), WriteFile(tmp_path))]
    call = ToolCall(name="read_file", arguments={"path": "notes.txt"})
    history = [
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="What does notes.txt say?"),
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", tool_call_id=call.id, name="read_file", content="1: buy milk"),
    ]
    reply = model.complete(history, specs)
    assert reply.message.role == "assistant"
    assert reply.message.content or reply.message.tool_calls
    assert reply.usage.prompt_tokens > 50 and reply.usage.completion_tokens > 0


def test_the_agent_runs_on_a_remote_model_and_ends_with_a_clear_status(
    server: str, store, workspace: Path
):
    model = OpenAICompatModel("qwen", base_url=server, api_key="none", max_output_tokens=128)
    agent = Agent(
        model, [ReadFile(workspace), WriteFile(workspace)], store, limits=Limits(max_steps=3)
    )
    sid = agent.start("Write notes.txt containing: buy milk", str(workspace))
    result = agent.run(sid)
    assert result.status in {"finished", "no_action", "limit:step", "repetition", "format_errors"}
    stored = store.messages(sid)
    assert [m.role for m in stored[:3]] == ["system", "user", "assistant"]
    assert all(
        "usage" in m.meta for m in stored if m.role == "assistant" and m.kind != "format_error"
    )
