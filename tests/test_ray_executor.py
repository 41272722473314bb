"""Ray as the executor: `spud serve` with SPUD_EXECUTOR=ray starts a Ray head on this machine and
two Ray worker processes; kill -9 of the worker process running a task moves the task to the
other worker, which resumes it with every step stored exactly once. `spud eval --executor ray`
gives the same results as in-process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from server_fixtures import replay_file, start_server
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from test_eval import HELLO_OK, SUITE, VERSION_BAD, recordings, spud

from spud.service.tables import TaskRow
from spud.store.sql import SqlStore

pytest.importorskip("ray", reason="the Ray executor needs the ray extra: pip install .[ray]")
pytestmark = pytest.mark.slow  # Ray starts in seconds on an idle machine, minutes on a busy one

STEPS = 5
ACTIVE = ("queued", "running", "waiting")


def holder(db: sessionmaker, task_id: str) -> str | None:
    """The worker whose claim the task holds now ("host:pid:start:nonce"), None if free."""
    with db() as s:
        return s.scalar(select(TaskRow.worker).where(TaskRow.id == task_id))


def stored_results(http, task_id: str) -> int:
    """How many tool results the task's session has stored."""
    session = http.get(f"/api/tasks/{task_id}").json().get("session_id")
    if not session:
        return 0
    messages = http.get(f"/api/sessions/{session}").json()["messages"]
    return sum(m["role"] == "tool" for m in messages)


def test_a_task_whose_ray_worker_is_killed_finishes_on_the_other(tmp_path: Path):
    counting = [
        {"calls": [{"name": "bash", "arguments": {"command": f"echo {n} >> log.txt"}}]}
        for n in range(1, STEPS + 1)
    ]
    counting.append({"calls": [{"name": "finish", "arguments": {"summary": "counted to 5"}}]})
    home = tmp_path / "home"
    env = {
        "SPUD_EXECUTOR": "ray",  # a Ray head started by the server, on this machine
        "SPUD_SERVER_WORKERS": "2",  # two Ray worker processes
        "SPUD_MODEL": replay_file(tmp_path / "count.json", counting),
        "SPUD_SERVER_MODEL_DELAY_S": "1.0",  # each step waits 1 s for the "model"
    }
    server = start_server(home, env, start_s=900)  # Ray starts first: minutes on a busy box
    db = sessionmaker(SqlStore(f"sqlite:///{home / 'spud.db'}").engine)
    try:
        with server.client() as http:
            ids = [
                http.post("/api/tasks", json={"prompt": "Count to 5", "workspace": w}).json()["id"]
                for w in ("w1", "w2", "w3")
            ]
            first = ids[0]
            log = home / "workspaces"
            deadline = time.monotonic() + 600  # the workers start after the server
            # Killed once step 2's result is stored: a kill between a command and the record
            # of its result runs that command again on resume (at least once, not exactly once).
            while not any(p.read_text() == "1\n2\n" for p in log.glob("*/w1/log.txt")) or (
                stored_results(http, first) < 2
            ):
                assert time.monotonic() < deadline, "the first task did not reach its 2nd step"
                time.sleep(0.05)
            victim = holder(db, first)  # the worker process running it, waiting for step 3
            other = holder(db, ids[1])  # the other worker process, running the second task
            assert victim is not None and other is not None and victim != other
            os.kill(int(victim.split(":")[1]), signal.SIGKILL)  # host:pid:start:nonce
            assert next(log.glob("*/w1/log.txt")).read_text() == "1\n2\n"

            after: set[str] = set()  # the workers that hold the first task from now on
            tasks: dict[str, dict] = {}
            while time.monotonic() < deadline + 600:
                if (now := holder(db, first)) not in (None, victim):
                    after.add(now)
                tasks = {t: http.get(f"/api/tasks/{t}").json() for t in ids}
                if all(t["status"] not in ACTIVE for t in tasks.values()):
                    break
                time.sleep(0.1)
            messages = http.get(f"/api/sessions/{tasks[first]['session_id']}").json()["messages"]
    finally:
        server.stop()

    assert {t["status"] for t in tasks.values()} == {"finished"}, tasks
    assert {t["steps"] for t in tasks.values()} == {STEPS + 1}
    for workspace in ("w1", "w2", "w3"):  # each command ran exactly once
        written = next(log.glob(f"*/{workspace}/log.txt")).read_text()
        assert written == "".join(f"{n}\n" for n in range(1, STEPS + 1)), workspace
    assert after == {other}, (victim, other, after)  # resumed on the other worker
    calls = [c for m in messages if m["role"] == "assistant" for c in m["tool_calls"]]
    assert [c["arguments"].get("command") for c in calls[:-1]] == [
        f"echo {n} >> log.txt" for n in range(1, STEPS + 1)
    ]
    results = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert results == [c["id"] for c in calls]  # each step stored once, in order
    logged = server.log.read_text()
    assert "died while running a job" in logged, logged[-2000:]
    assert "dropped" not in logged  # Ray restarted the killed worker for later tasks


def test_eval_on_ray_workers_gives_the_in_process_results(tmp_path: Path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "basics.toml").write_text(SUITE)
    model = recordings(tmp_path / "rec", {"hello": HELLO_OK, "version": VERSION_BAD})
    outcomes = []
    for how in (["--workers", "1"], ["--executor", "ray", "--workers", "2"]):
        out = tmp_path / f"out-{len(outcomes)}"
        args = ("eval", str(suite), "--model", model, *how, "-o", str(out))
        r = spud(tmp_path / "home", *args, timeout=1200)  # Ray starts in seconds to minutes
        assert r.returncode == 0, r.stdout + r.stderr
        assert "passed 1/2 (50%)" in r.stdout
        results = json.loads((out / "results.json").read_text())["results"]
        keep = ("passed", "status", "detail", "steps", "tokens", "calls", "valid_calls")
        outcomes.append({x["task_id"]: {k: x[k] for k in keep} for x in results})
        assert (out / "workspaces" / "hello" / "hello.txt").read_text() == "hi"
    assert outcomes[0] == outcomes[1]
