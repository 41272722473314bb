"""The shared model server: the embedded model behind one supervised llama.cpp server."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spud.config import Settings
from spud.core.messages import Message
from spud.core.tooling import tool_spec
from spud.models.served import ServedModel
from spud.service.modelpool import ModelPool
from spud.tools.files import ListFiles, ReadFile, WriteFile

pytestmark = pytest.mark.model

MODEL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelPool]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, model=MODEL, context_window=4096, model_server="start")
    pool = ModelPool(settings)
    try:
        yield pool
    finally:
        pool.close()


def test_spud_serve_settings_start_one_server_and_sessions_use_it(pool: ModelPool) -> None:
    model = pool.get(MODEL)
    assert isinstance(model.inner, ServedModel)
    assert model.lock is None  # requests queue on the server, not in this process
    url = pool.settings.model_server
    assert url.startswith("http://127.0.0.1:") and pool.model_server is not None
    served = httpx.get(f"{url}/v1/models", timeout=5).json()
    assert [m["id"] for m in served["data"]] == [MODEL]


def test_a_tool_call_is_constrained_by_the_grammar_on_the_server(
    pool: ModelPool, tmp_path: Path
) -> None:
    model = pool.get(MODEL)
    (tmp_path / "notes.txt").write_text("buy milk\n")
    specs = [tool_spec(t) for t in (ReadFile(tmp_path), WriteFile(tmp_path), ListFiles(tmp_path))]
    # live choices narrow the path in the grammar: only a file that exists can be read
    specs[0] = specs[0].model_copy(update={"choices": {"path": ["notes.txt"]}})
    messages = [
        Message(role="system", content="You are a careful assistant that uses tools."),
        Message(role="user", content="What does notes.txt say? Read it."),
    ]
    reply = model.complete(messages, specs)
    calls = reply.message.tool_calls
    assert calls and calls[0].name in {"read_file", "write_file", "list_files"}
    assert calls[0].name == "read_file" and calls[0].arguments["path"] == "notes.txt"
    assert reply.usage.prompt_tokens > 100 and reply.usage.completion_tokens > 3
    assert reply.usage.prompt_eval_tokens is None  # the shared cache does not say


def test_a_plain_answer_comes_back_in_text_and_streams(pool: ModelPool) -> None:
    model = pool.get(MODEL)
    question = [
        Message(role="system", content="You are a helpful assistant. Answer briefly."),
        Message(role="user", content="What is 2 + 3? Answer with the number."),
    ]
    reply = model.chat(question, max_tokens=16)
    assert "5" in reply.message.content and not reply.message.tool_calls
    pieces: list[str] = []
    spec = tool_spec(ReadFile(Path("/nonexistent")))
    streamed = model.answer_or_call(question, [spec], on_text=pieces.append)
    if not streamed.message.tool_calls:  # prose: handed over piece by piece as generated
        assert "".join(pieces).strip() == streamed.message.content and len(pieces) > 1


def test_the_supervisor_restarts_the_server_after_kill_9(pool: ModelPool) -> None:
    model = pool.get(MODEL)
    server = pool.model_server
    assert server is not None
    before = server.pid
    assert before is not None
    started = time.monotonic()
    os.kill(before, signal.SIGKILL)
    # the next request waits for the restarted server instead of failing the session
    reply = model.chat([Message(role="user", content="Say OK.")], max_tokens=4)
    assert reply.message.content
    assert server.restarts == 1 and server.pid != before
    assert time.monotonic() - started < 90


def test_closing_the_pool_stops_the_server(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, model=MODEL, context_window=2048, model_server="start")
    pool = ModelPool(settings)
    url = pool.start_model_server()
    assert url and pool.model_server is not None
    proc = pool.model_server.proc
    assert proc is not None and proc.poll() is None
    pool.close()
    assert proc.poll() is not None and pool.model_server.restarts == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/v1/models", timeout=2)
