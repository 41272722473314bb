"""Appends inside a step skip the wait for the disk: which ones, and that none is lost on kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spud.core.messages import Message, ToolCall
from spud.store.sql import SqlStore
from spud.store.steps import StepEnds

SRC = Path(__file__).resolve().parents[1] / "src"


def _step(*names: str) -> tuple[Message, list[Message]]:
    calls = [ToolCall(name=n) for n in names]
    reply = Message(role="assistant", tool_calls=calls)
    return reply, [Message(role="tool", tool_call_id=c.id, content="ok") for c in calls]


def test_only_the_last_append_of_a_step_ends_it() -> None:
    ends = StepEnds()
    assert not ends.ends_step("s", Message(role="system", content="prompt"))
    assert ends.ends_step("s", Message(role="user", content="task"))
    reply, results = _step("read_file", "bash")
    assert not ends.ends_step("s", reply)
    assert [ends.ends_step("s", r) for r in results] == [False, True]
    invalid = Message(role="assistant", meta={"kind": "format_error"})
    assert not ends.ends_step("s", invalid)  # the note on it follows
    assert ends.ends_step("s", Message(role="user", content="not a valid call"))
    reply, results = _step("bash")
    assert not ends.ends_step("other", reply)
    assert ends.ends_step("s", results[0])  # a step this store did not see begin (resumed)


CHILD = textwrap.dedent(
    """
    import sys, time
    from spud.core.messages import Message, ToolCall
    from spud.store.sql import SqlStore
    store = SqlStore(sys.argv[1])
    for i in range(10_000):
        reply = Message(role="assistant", tool_calls=[ToolCall(name="bash")], meta={"i": i})
        store.append(sys.argv[2], reply)  # inside a step: no wait for the disk
        print(f"appended {i + 1}", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.databases
def test_appends_inside_a_step_survive_kill_9(db_url: str) -> None:
    url = db_url
    with SqlStore(url) as store:
        sid = store.create_session("within a step", "/w", "m")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, url, sid], stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        try:
            assert child.stdout is not None
            acknowledged = 0
            while acknowledged < 25:
                line = child.stdout.readline()
                assert line, "the child exited before appending"
                acknowledged = int(line.split()[1])
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    with SqlStore(url) as store:
        got = store.messages(sid)
        assert len(got) >= acknowledged
        assert [m.meta["i"] for m in got] == list(range(len(got)))


@pytest.mark.databases
def test_an_append_inside_a_step_is_seen_by_another_connection_at_once(db_url: str) -> None:
    with SqlStore(db_url) as writer, SqlStore(db_url) as reader:
        sid = writer.create_session("seen", "/w", "m")
        reply, _ = _step("bash")
        writer.append(sid, reply)
        assert [m.tool_calls[0].name for m in reader.messages(sid)] == ["bash"]
