"""kill -9 of `spud serve` in the middle of a task, then a restart: the task completes with
no step lost or repeated."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_fixtures import replay_file, sse_events, start_server

pytestmark = pytest.mark.databases  # on SQLite and on PostgreSQL (tests/conftest.py)

STEPS = 5


def test_a_task_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    replies = [
        {"calls": [{"name": "bash", "arguments": {"command": f"echo {n} >> log.txt"}}]}
        for n in range(1, STEPS + 1)
    ]
    replies.append({"calls": [{"name": "finish", "arguments": {"summary": "counted to 5"}}]})
    env = {
        "SPUD_MODEL": replay_file(tmp_path / "slow.json", replies),
        "SPUD_SERVER_MODEL_DELAY_S": "1.0",  # each step waits 1 s for the "model"
    }
    home = tmp_path / "home"
    first = start_server(home, env)
    try:
        with first.client() as http:
            task = http.post("/api/tasks", json={"prompt": "Count to 5", "workspace": "w"}).json()
            with http.stream("GET", f"/api/tasks/{task['id']}/events") as events:
                for e in sse_events(events):
                    if e["event"] == "result" and e["data"]["output"].startswith("(no output)"):
                        if e["data"]["index"] >= 5:  # the second command's result is stored
                            break
            first.kill()  # the worker is now waiting for the model's third reply
    finally:
        first.stop()
    log = home / "workspaces"
    written = next(log.glob("*/w/log.txt")).read_text()
    assert written == "1\n2\n", "the server was killed at a different point than intended"

    second = start_server(home, env, key=first.key, port=first.port)
    try:
        with second.client() as http:
            with http.stream("GET", f"/api/tasks/{task['id']}/events") as events:
                finish = [e for e in sse_events(events) if e["event"] == "finish"][0]
            assert finish["data"]["status"] == "finished"
            # the summary says what was checked: this task names nothing a check could look at
            assert finish["data"]["summary"].startswith("counted to 5 [not checked")
            done = http.get(f"/api/tasks/{task['id']}").json()
            messages = http.get(f"/api/sessions/{done['session_id']}").json()["messages"]
    finally:
        second.stop()
    assert next(log.glob("*/w/log.txt")).read_text() == "".join(
        f"{n}\n" for n in range(1, STEPS + 1)
    )
    calls = [c for m in messages if m["role"] == "assistant" for c in m["tool_calls"]]
    assert [c["arguments"].get("command") for c in calls[:-1]] == [
        f"echo {n} >> log.txt" for n in range(1, STEPS + 1)
    ]
    results = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert results == [c["id"] for c in calls]  # each call answered once, in order
    assert done["steps"] == STEPS + 1
