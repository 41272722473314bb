"""Real headless Chromium walks every page of the web app as admin, member and viewer: a
screenshot of each under tests/artifacts/walk/, and axe-core (vendored by scripts/setup.sh)
run in each page finds no serious or critical accessibility violation."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from server_fixtures import ADMIN_PASSWORD, ServerProc, replay_file, start_server

from spud.browser_policy import BrowserPolicy
from spud.eval.records import EvalStore, TaskResult
from spud.memory.sleep import SelfTest, SleepReport
from spud.memory.tables import SleepRunRow
from spud.store.sql import SqlStore
from spud.tools.browser.launch import BROWSER_LAUNCH_ARGS

CHROMIUM = Path(BrowserPolicy().executable_path)
AXE = Path(__file__).parent / "vendor" / "axe-core-4.11.1.min.js"
SHOTS = Path(__file__).parent / "artifacts" / "walk"
PASSWORD = "walk-password-1"
ROLES = ("admin", "member", "viewer")
ANSWER = (
    "Here is the **fix**:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "- one\n- two\n\n<img src=x onerror=alert(1)> stays text."
)
BLOCKING = ("serious", "critical")
WAIT_MS = 180_000  # a busy shared machine is slow; nothing here is timed

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


def seed(server: ServerProc) -> dict[str, Any]:
    """Users, a chat with a markdown answer, a finished task, two eval runs, a sleep."""
    admin = server.client()
    for role in ("member", "viewer"):
        r = admin.post("/api/users", json={"username": role, "password": PASSWORD, "role": role})
        assert r.status_code == 201, r.text
    chat = server.openai().chat.completions.create(
        model="spud-agent", messages=[{"role": "user", "content": "Fix add()"}]
    )
    chat_session = chat.model_extra["spud_session_id"]
    spec = {"prompt": "Write walk.txt", "workspace": "walk", "model": server.extra["task_model"]}
    task = admin.post("/api/tasks", json=spec).json()
    deadline = time.monotonic() + 120
    while (info := admin.get(f"/api/tasks/{task['id']}").json())["status"] != "finished":
        assert info["status"] in ("queued", "running"), info
        assert time.monotonic() < deadline, info
        time.sleep(0.2)
    store = SqlStore(f"sqlite:///{server.home / 'spud.db'}")
    evals = EvalStore(store)
    runs = [evals.create_run("spud", m, "spud", 1, "") for m in ("model-a", "model-b")]
    for run, passes in zip(runs, ((True, False), (False, True)), strict=True):
        for i, passed in enumerate(passes):
            result = TaskResult(
                task_id=f"t{i}", category="coding", passed=passed, status="finished"
            )
            evals.add_result(run, result)
    me = next(u for u in admin.get("/api/users").json() if u["username"] == "member")
    report = SleepReport(
        user_id=me["user_id"],
        org_id=me["org_id"],
        facts=["The user ships on Fridays"],
        self_tests=[SelfTest(question="q", answer="a", before=0.2, after=0.8)],
    )
    with store._session.begin() as db:
        db.add(
            SleepRunRow(user_id=me["user_id"], org_id=me["org_id"], report=report.model_dump_json())
        )
    store.close()
    return {
        "chat": chat_session,
        "task": task["id"],
        "session": info["session_id"],
        "runs": runs,
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProc, dict[str, Any]]]:
    assert AXE.exists(), f"{AXE} is missing: scripts/setup.sh vendors axe-core from npm"
    tmp = tmp_path_factory.mktemp("walk")
    chat = replay_file(tmp / "chat.json", [{"answer": ANSWER}])
    task = replay_file(
        tmp / "task.json",
        [
            {
                "calls": [
                    {"name": "write_file", "arguments": {"path": "walk.txt", "content": "w\n"}}
                ]
            },
            {"calls": [{"name": "finish", "arguments": {"summary": "wrote walk.txt"}}]},
        ],
    )
    bench = tmp / "learning.json"
    curve = [{"day": d, "em": 40.0 - d, "f1": 50.0 - d, "passage_recall": 100} for d in (1, 2, 3)]
    bench.write_text(
        json.dumps(
            {
                "config": {"passages": "4:6", "questions": 9, "model": "qwen2.5-coder-0.5b"},
                "base": {"em": 10.0, "f1": 20.0},
                "passage": {"em": 60.0, "f1": 70.0},
                "after_sleep": {"em": 39.0, "f1": 49.0},
                "forgetting": curve,
            }
        )
    )
    env = {
        "SPUD_MODEL": chat,  # spud-agent's
        "SPUD_SERVER_MODELS": json.dumps([task]),
        "SPUD_SERVER_LEARNING_RESULTS": str(bench),
    }
    server = start_server(tmp / "home", env, start_s=WAIT_MS / 1000)
    server.extra["task_model"] = task
    try:
        yield server, seed(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=BROWSER_LAUNCH_ARGS
        )
        yield b
        b.close()


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{url}/chat")


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations in the page as it is now."""
    page.evaluate(AXE.read_text() + "\n;0")  # through DevTools: the page's CSP stays on
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}"
        for v in found
        if v["impact"] in BLOCKING
    ]


def slug(path: str) -> str:
    path = re.sub(r"[0-9a-f]{32}", "id", path.lower())  # the same names on every run
    return re.sub(r"[^a-z0-9]+", "-", path).strip("-") or "home"


def test_the_accessibility_check_finds_what_it_must(browser: Any) -> None:
    """Guards the walk against passing because axe-core did not run."""
    assert AXE.exists(), f"{AXE} is missing: scripts/setup.sh vendors axe-core from npm"
    page = browser.new_page()
    page.set_content(
        '<html lang="en"><title>t</title><main><img src="a.png"><button></button></main>'
    )
    found = accessibility_problems(page)
    assert any("image-alt" in f for f in found) and any("button-name" in f for f in found), found
    page.close()


def test_every_page_as_admin_member_and_viewer(site: tuple[ServerProc, dict], browser: Any) -> None:
    server, seeded = site
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    expect.set_options(timeout=WAIT_MS)
    problems: dict[str, list[str]] = {}
    visited: dict[str, list[str]] = {}

    # the sign-in page, before anyone is signed in
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.screenshot(path=str(SHOTS / "anonymous-login.png"), full_page=True)
    problems["/login"] = accessibility_problems(page)
    context.close()

    run_a, run_b = seeded["runs"]
    extras = [
        f"/chat?session={seeded['chat']}",
        f"/tasks/{seeded['task']}",
        f"/sessions/{seeded['session']}",
        "/files?path=walk",
        "/settings/mcp",
        "/memory?q=Kiwi+release",
        f"/eval/{run_a}",
        f"/eval/compare?a={run_a}&b={run_b}",
        "/admin",  # an error page for members and viewers
    ]
    for role in ROLES:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        errors: list[str] = []  # console errors (a CSP refusal), and what failed to load
        page.on("console", lambda m, errors=errors: console_error(m, errors))
        page.on(
            "response",
            lambda r, errors=errors: r.status >= 400 and errors.append(f"{r.status} {r.url}"),
        )
        sign_in(page, server.url, role, ADMIN_PASSWORD if role == "admin" else PASSWORD)
        nav = page.locator("header nav a").evaluate_all("links => links.map(a => a.pathname)")
        assert {"/chat", "/tasks", "/memory", "/learning", "/eval"} <= set(nav), nav
        if role == "member":  # learn a document through the memory page's form first
            page.goto(f"{server.url}/memory")
            page.get_by_label("File (text").set_input_files(
                files=[
                    {
                        "name": "kiwi.md",
                        "mimeType": "text/markdown",
                        "buffer": b"The Kiwi release ships on the third Friday of March.\n",
                    }
                ]
            )
            page.get_by_role("button", name="Learn").click()
            expect(page.get_by_role("status").first).to_contain_text("Learned upload:kiwi.md")
        visited[role] = []
        for path in [*nav, *extras]:
            answer = page.goto(f"{server.url}{path}")
            refused = role != "admin" and path in ("/admin", extras[0])  # not theirs to see
            expected = 200 if not refused else 403 if path == "/admin" else 404
            assert answer and answer.status == expected, (role, path, answer and answer.status)
            if refused:  # the page's own status, which the browser also logs: expected here
                errors[:] = [e for e in errors if "status of 40" not in e and answer.url not in e]
            if path.startswith("/tasks/"):
                expect(page.locator("#task-status")).to_have_text("finished")
                expect(page.locator("#trajectory .item").first).to_be_visible()
            if path.startswith("/chat?session=") and role == "admin":
                check_markdown(page)
                page.get_by_role("button", name="Regenerate").click()  # the answer again
                expect(page.locator("#chat-status")).to_have_text("Answered.")
                expect(page.locator("#transcript .turn.assistant")).to_have_count(1)
                check_markdown(page)
            if path == "/chat":
                chat_controls(page, role)  # shown while axe-core looks at the page
            page.screenshot(path=str(SHOTS / f"{role}-{slug(path)}.png"), full_page=True)
            problems[f"{role} {path}"] = accessibility_problems(page)
            visited[role].append(path)
        assert not errors, f"console errors as {role} (a CSP refusal?): {errors}"
        context.close()
    shots = sorted(p.name for p in SHOTS.glob("*.png"))
    print(
        f"\n{len(shots)} screenshots in {SHOTS}; pages per role: "
        + ", ".join(f"{r} {len(v)}" for r, v in visited.items())
    )
    bad = {page: found for page, found in problems.items() if found}
    assert not bad, json.dumps(bad, indent=1)


def chat_controls(page: Page, role: str) -> None:
    """A member or admin drops two files on the chat (one too large), adds one to the
    workspace, and has the model picker; a viewer has none of these controls."""
    if role == "viewer":
        for control in ("#chat-form", "#chat-files", "#chat-model", "#stop-turn", "#regenerate"):
            expect(page.locator(control)).to_have_count(0)
        return
    expect(page.get_by_label("Model")).to_have_value(re.compile(r"replay:.*chat\.json$"))
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()  # nothing is running
    page.evaluate(
        """(files) => {
          const data = new DataTransfer();
          for (const [name, size] of files)
            data.items.add(new File(["x".repeat(size)], name, {type: "text/plain"}));
          document.getElementById("chat").dispatchEvent(
            new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        [[f"{role}-notes.txt", 12], ["huge.txt", 3_500_000]],
    )
    listed = page.get_by_role("list", name="Files dropped into the chat")
    expect(listed.get_by_role("listitem")).to_have_count(2)
    page.get_by_role("button", name="Add to workspace").click()
    expect(listed).to_contain_text(f"added to the workspace as default/{role}-notes.txt")
    expect(listed).to_contain_text("huge.txt is 3.5 MB, over the 3 MB limit: not sent")


def console_error(message: Any, errors: list[str]) -> None:
    """A console error, with where it came from; the browser's own /favicon.ico miss aside."""
    where = (message.location or {}).get("url", "")
    if message.type == "error" and not where.endswith("/favicon.ico"):
        errors.append(f"{message.text} ({where})")


def check_markdown(page: Page) -> None:
    """The answer's markdown is rendered; the HTML in it stays text and makes no element."""
    answer = page.locator("#transcript .turn.assistant .text").last
    expect(answer.locator("pre.code code")).to_have_text("def add(a, b):\n    return a + b")
    expect(answer.locator("strong")).to_have_text("fix")
    expect(answer.locator("ul li")).to_have_text(["one", "two"])
    expect(answer).to_contain_text("<img src=x onerror=alert(1)> stays text.")
    assert answer.locator("img").count() == 0
