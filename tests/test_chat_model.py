"""On the embedded model, a plain question in chat gets a plain, streamed answer on every surface."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_fixtures import ServerProc, start_server

from spud.config import Settings
from spud.server.openai_api import pieces as cut_up
from spud.service.sessions import RunSpec, SessionService

pytestmark = pytest.mark.model
MODEL = "qwen2.5-coder-0.5b"
QUESTION = "What is 2 + 3?"
ENV = {"SPUD_MODEL": MODEL, "SPUD_THREADS": "2", "SPUD_CONTEXT_WINDOW": "4096"}


def test_spud_chat_sessions_answer_without_a_tool(tmp_path: Path) -> None:
    """The path `spud chat` takes: SessionService with chat=True."""
    svc = SessionService(Settings(home=tmp_path / "home", model=MODEL, context_window=4096))
    pieces: list[str] = []
    started = time.monotonic()
    result = svc.execute(
        RunSpec(workspace=tmp_path, task=QUESTION, chat=True, on_text=pieces.append)
    )
    print(f"\nanswered in {time.monotonic() - started:.1f}s: {result.summary!r}, {pieces!r}")
    assert result.status == "finished" and "5" in result.summary
    tools = [m.name for m in svc.messages(result.session_id) if m.role == "tool"]
    assert tools == ["finish"]  # the text answer's own end, no tool call
    assert len(pieces) > 1 and "".join(pieces).strip() == result.summary
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]  # no file written


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    s = start_server(tmp_path_factory.mktemp("chatmodel") / "home", ENV)
    yield s
    s.stop()


def test_spud_agent_streams_the_answer_without_a_tool(server: ServerProc) -> None:
    stream = server.openai().chat.completions.create(
        model="spud-agent", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    pieces = [p for p in pieces if p]
    print(f"\nspud-agent streamed {pieces!r}")
    assert "5" in "".join(pieces) and len(pieces) > 1
    assert pieces != cut_up("".join(pieces))  # the model's own pieces, not a whole answer cut up
    assert not [c for c in chunks if getattr(c, "spud_step", None)]  # no tool step


def test_the_chat_repl_answers_without_a_tool(tmp_path: Path) -> None:
    env = {**os.environ, **ENV, "SPUD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env["SPUD_CONFIG"] = str(tmp_path / "none.toml")
    ws = tmp_path / "ws"
    ws.mkdir()
    repl = subprocess.Popen(
        [sys.executable, "-m", "spud", "chat", "--workspace", str(ws)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert repl.stdin and repl.stdout
    repl.stdin.write(f"{QUESTION}\n".encode())
    repl.stdin.close()
    reads = read_all(repl, timeout=900)  # a loaded 2-core machine; the time is not asserted
    out = b"".join(reads).decode()
    print(out)
    answer = next(line for line in out.splitlines() if "spud>" in line)
    assert "5" in answer and "→" not in out  # no tool step shown
    assert not list(ws.iterdir())  # nothing written
    assert answer_reads(reads) > 1  # the answer reached the terminal in more than one piece


def read_all(proc: subprocess.Popen[bytes], timeout: float) -> list[bytes]:
    """A process's stdout, read by read as it comes, until it exits."""
    assert proc.stdout
    reads: list[bytes] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as waiting:
        waiting.register(proc.stdout, selectors.EVENT_READ)
        while data := waiting.select(deadline - time.monotonic()) and os.read(
            proc.stdout.fileno(), 65536
        ):
            reads.append(data)
            if time.monotonic() > deadline:
                break
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert time.monotonic() <= deadline, f"no end in {timeout} s: {b''.join(reads)[-2000:]!r}"
    return reads


def answer_reads(reads: list[bytes]) -> int:
    """How many reads carried some of the answer (the text after "spud> ", up to the prompt)."""
    out = b"".join(reads)
    begin = out.index(b"spud> ") + len(b"spud> ")
    end = out.find(b"you> ", begin)
    carried, at = 0, 0
    for data in reads:
        lo, hi = max(at, begin), min(at + len(data), end)
        carried += hi > lo and bool(out[lo:hi].strip())
        at += len(data)
    return carried
