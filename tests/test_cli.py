"""The CLI as a user runs it: friendly errors, run/show/list, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPUD = [sys.executable, "-m", "spud"]


def spud(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SPUD, *args], capture_output=True, text=True, env=_env(home), timeout=timeout
    )


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPUD_HOME": str(home),
        "SPUD_CONFIG": str(home / "none.toml"),
        "COLUMNS": "200",
    }


def replay_file(tmp_path: Path, replies: list[dict]) -> str:
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(replies))
    return f"replay:{path}"


def call(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


def test_missing_workspace_is_a_clear_error(tmp_path: Path):
    r = spud(tmp_path, "run", "do it", "--workspace", str(tmp_path / "nope"), "--model", "x")
    assert r.returncode == 1
    assert "does not exist" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_unknown_model_is_a_clear_error(tmp_path: Path):
    r = spud(tmp_path, "run", "do it", "--workspace", str(tmp_path), "--model", "gpt-17")
    assert r.returncode == 1
    assert "unknown model 'gpt-17'" in r.stdout and "qwen2.5-coder-0.5b" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(os.urandom(4096))
    r = spud(tmp_path, "run", "do it", "--workspace", str(tmp_path), "--model", str(bad))
    assert r.returncode == 1 and "cannot load model file" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_bad_configuration_is_a_clear_error(tmp_path: Path):
    env = {**_env(tmp_path), "SPUD_CONTEXT_WINDOW": "lots"}
    r = subprocess.run([*SPUD, "sessions", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "invalid configuration: context_window" in r.stdout
    (tmp_path / "bad.toml").write_text("model = [unclosed")
    env = {**_env(tmp_path), "SPUD_CONFIG": str(tmp_path / "bad.toml")}
    r = subprocess.run([*SPUD, "sessions", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "not valid TOML" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_unknown_session_is_a_clear_error(tmp_path: Path):
    r = spud(tmp_path, "sessions", "show", "deadbeef")
    assert r.returncode == 1 and "no session" in r.stdout


def test_run_streams_steps_and_show_renders_the_trajectory(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    model = replay_file(
        tmp_path,
        [
            call("write_file", path="hello.py", content="print('hi there')\n"),
            call("bash", command="python3 hello.py"),
            call("finish", summary="wrote and ran hello.py"),
        ],
    )
    r = spud(tmp_path, "run", "write hello.py", "--workspace", str(ws), "--model", model, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ws / "hello.py").read_text() == "print('hi there')\n"
    assert "+print('hi there')" in r.stdout  # the diff is shown
    assert "hi there" in r.stdout and "finished" in r.stdout
    assert "Trajectory stored in" in r.stdout
    listing = spud(tmp_path, "sessions", "list")
    sid = listing.stdout.split("\n")[3].split()[1]
    shown = spud(tmp_path, "sessions", "show", sid)
    assert shown.returncode == 0
    assert "→ write_file" in shown.stdout and "→ bash" in shown.stdout
    assert "wrote and ran hello.py" in shown.stdout


def test_risky_command_without_yes_is_denied_not_run(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep.txt").write_text("precious")
    model = replay_file(
        tmp_path, [call("bash", command="rm keep.txt"), call("finish", summary="x")]
    )
    r = spud(tmp_path, "run", "clean up", "--workspace", str(ws), "--model", model)
    assert (ws / "keep.txt").read_text() == "precious"
    assert "Not run" in r.stdout and "--yes" in r.stdout


def test_resume_after_kill_9_continues_without_repeating(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    model = replay_file(
        tmp_path,
        [
            call("bash", command="echo one >> log.txt"),
            call("bash", command="sleep 30; echo two >> log.txt"),
            call("bash", command="echo three >> log.txt"),
            call("finish", summary="logged three lines"),
        ],
    )
    proc = subprocess.Popen(
        [*SPUD, "run", "log", "--workspace", str(ws), "--model", model, "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(tmp_path),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (ws / "log.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # now inside the sleeping second step
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ws / "log.txt").read_text() == "one\n"
    listing = spud(tmp_path, "sessions", "list")
    assert "running" in listing.stdout
    sid = listing.stdout.split("\n")[3].split()[1]
    r = spud(tmp_path, "resume", sid, "--yes", timeout=120)
    assert r.returncode == 0, r.stdout
    assert (ws / "log.txt").read_text() == "one\ntwo\nthree\n"
    shown = spud(tmp_path, "sessions", "show", sid).stdout
    assert shown.count("echo one") == 1 and shown.count("echo three") == 1


@pytest.mark.parametrize("args", [["models", "list"], ["--help"]])
def test_informational_commands_work(tmp_path: Path, args: list[str]):
    r = spud(tmp_path, *args)
    assert r.returncode == 0 and r.stdout.strip()


def test_run_and_chat_help_list_every_optional_tool_set(tmp_path: Path):
    from spud import toolsets

    for command in ("run", "chat"):
        r = spud(tmp_path, command, "--help")
        assert r.returncode == 0
        shown = " ".join(" ".join(line.strip("│ ") for line in r.stdout.splitlines()).split())
        for s in toolsets.optional():
            assert f"{s.name}: {s.summary}" in shown, (command, s.name)


def test_chat_keeps_history_across_turns_and_sessions(tmp_path: Path):
    model = replay_file(
        tmp_path,
        [
            {"answer": "Hello! I am Spud."},
            call("finish", summary="You said hello."),
            call("finish", summary="Still here."),
        ],
    )
    args = ["chat", "--workspace", str(tmp_path), "--model", model]
    r = subprocess.run(
        [*SPUD, *args],
        input="hello\nwhat did I say?\n",
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "spud> Hello! I am Spud." in r.stdout and "spud> You said hello." in r.stdout
    sid = r.stdout.strip().split()[-1]
    again = subprocess.run(
        [*SPUD, *args, "--session", sid],
        input="still there?\n",
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
    )
    assert "spud> Still here." in again.stdout
    shown = spud(tmp_path, "sessions", "show", sid).stdout
    assert shown.index("hello") < shown.index("what did I say?") < shown.index("still there?")


def test_a_run_stopped_by_the_step_limit_resumes_with_a_higher_limit(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    model = replay_file(
        tmp_path,
        [
            call("write_file", path="a.txt", content="a"),
            call("write_file", path="b.txt", content="b"),
            call("finish", summary="both"),
        ],
    )
    r = spud(
        tmp_path, "run", "write two files", "-w", str(ws), "--model", model, "--max-steps", "1"
    )
    assert r.returncode == 2 and "limit:step" in r.stdout
    assert (ws / "a.txt").exists() and not (ws / "b.txt").exists()
    sid = r.stdout.split("view it with `spud sessions show ")[1].split("`")[0]
    r = spud(tmp_path, "resume", sid, "--max-steps", "5")
    assert r.returncode == 0, r.stdout
    assert (ws / "b.txt").read_text() == "b" and "both" in r.stdout


def test_office_task_lists_verified_files_and_verify_command(tmp_path: Path):
    from openpyxl import Workbook

    ws = tmp_path / "ws"
    ws.mkdir()
    wb = Workbook()
    wb.active.append(["item", "amount"])
    for row in (["a", 100], ["b", 50], ["c", 100]):
        wb.active.append(row)
    wb.save(ws / "sales.xlsx")
    model = replay_file(
        tmp_path,
        [
            call(
                "sheet_write",
                path="sales.xlsx",
                cells={"A5": "total", "B5": "=SUM(B2:B4)", "C5": "=B5/0"},
            ),
            call("finish", summary="added a total"),
        ],
    )
    r = spud(
        tmp_path, "run", "Add a total row to sales.xlsx", "-w", str(ws), "--model", model, "--yes"
    )
    assert "office" in r.stdout  # the task names an .xlsx file, so office tools are on
    assert "C5" in r.stdout and "#DIV/0!" in r.stdout  # the error is reported with its address
    assert "files produced" in r.stdout and "sales.xlsx" in r.stdout
    bad = spud(tmp_path, "verify", str(ws / "sales.xlsx"))
    assert bad.returncode == 2 and "#DIV/0!" in bad.stdout
    missing = spud(tmp_path, "verify", str(ws / "nope.xlsx"))
    assert missing.returncode == 1 and "no such file" in missing.stdout


def test_browser_task_from_the_cli_reads_a_local_page(tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    from sites.server import SiteServer

    site = SiteServer()
    try:
        ws = tmp_path / "ws"
        ws.mkdir()
        model = replay_file(
            tmp_path,
            [
                call("browser_open", url=f"{site.url}/price.html"),
                call("browser_read"),
                call("write_file", path="price.txt", content="4.25"),
                call("finish", summary="the Blue Widget costs 4.25"),
            ],
        )
        env = {**_env(tmp_path), "SPUD_BROWSER_POLICY__ALLOW_LOOPBACK": "true"}
        args = ["run", "Write the price of the Blue Widget to price.txt", "-w", str(ws)]
        r = subprocess.run(
            [*SPUD, *args, "--model", model, "--tools", "browser", "--yes"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "browser" in r.stdout and "untrusted content" in r.stdout
        assert "Blue Widget" in r.stdout and (ws / "price.txt").read_text() == "4.25"
        assert any("price.html" in line for line in site.log)
    finally:
        site.close()


def test_unknown_playbook_or_effort_is_a_clear_error(tmp_path: Path):
    for flag, value, says in (
        ("--playbook", "cooking", "unknown playbook 'cooking'; known: code, files, office, web"),
        ("--effort", "max", "unknown effort 'max'"),
    ):
        r = spud(tmp_path, "run", "do it", "--workspace", str(tmp_path), flag, value)
        assert r.returncode == 1 and says in r.stdout, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr


def test_run_with_tests_says_which_check_passed(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (ws / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    fixed = "def add(a, b):\n    return a + b\n"
    model = replay_file(
        tmp_path, [call("write_file", path="calc.py", content=fixed), call("finish", summary="ok")]
    )
    task = "Fix calc.py so the tests in test_calc.py pass."
    r = spud(tmp_path, "run", task, "--workspace", str(ws), "--model", model, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests after this change: 1 passed" in r.stdout
    assert "checked and passed: `python -m pytest -q`" in r.stdout
