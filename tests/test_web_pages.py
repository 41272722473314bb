"""The memory, eval and learning pages and the desktop sign-in, through FastAPI's TestClient."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_fixtures import csrf_token, replay_file

from spud.config import Settings
from spud.eval.records import EvalStore, TaskResult
from spud.memory.sleep import SelfTest, SleepReport
from spud.memory.store import NewMemory
from spud.memory.tables import SleepRunRow
from spud.server import charts
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.service.users import Principal

PASSWORD = "password-123"
LOOPBACK = ("127.0.0.1", 50000)


class Site:
    """Organisation A (admin, member, viewer) and B (member); a fact, two eval runs, a sleep."""

    def __init__(self, tmp: Path) -> None:
        model = replay_file(tmp / "agent.json", [{"answer": "hi"}])
        self.bench = tmp / "learning.json"
        self.svc = Services(Settings(home=tmp / "home", model=model))
        self.app = create_app(self.svc, ServerSettings(learning_results=self.bench))
        self.users: dict[str, Principal] = {}
        for org, role in (("A", "admin"), ("A", "member"), ("A", "viewer"), ("B", "member")):
            name = f"{role}-{org}"
            self.users[name] = self.svc.users.add_user(name, PASSWORD, f"org{org}", role)
        self.memory = self.svc.sessions.memory
        member = self.users["member-A"]
        self.fact = self.memory.memories.add(
            member.user_id,
            member.org_id,
            NewMemory("fact", "The user's editor is <b>vim</b>", source="session abc"),
        )
        evals = EvalStore(self.svc.sessions.store)
        self.run_a = evals.create_run("spud", "model-a", "spud", 1, "")
        self.run_b = evals.create_run("spud", "model-b", "spud", 1, "")
        for run, passes in ((self.run_a, (True, False)), (self.run_b, (False, True))):
            for i, passed in enumerate(passes):
                evals.add_result(
                    run,
                    TaskResult(
                        task_id=f"task-{i}",
                        category="<coding>",
                        passed=passed,
                        status="finished",
                        steps=3,
                        tokens=100,
                    ),
                )
        report = SleepReport(
            user_id=member.user_id,
            org_id=member.org_id,
            sessions=2,
            facts=["The user likes tea"],
            skills=["How to run the tests"],
            self_tests=[SelfTest(question="q", answer="a", before=0.25, after=0.75)],
        )
        with self.memory.memories.session.begin() as db:
            db.add(
                SleepRunRow(
                    user_id=member.user_id, org_id=member.org_id, report=report.model_dump_json()
                )
            )

    def client(self, username: str | None = None, at: tuple[str, int] = LOOPBACK) -> TestClient:
        client = TestClient(self.app, follow_redirects=False, client=at)
        client.headers["x-csrf-token"] = csrf_token(client)
        if username:
            r = client.post("/auth/login", data={"username": username, "password": PASSWORD})
            assert r.status_code == 303
        return client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("pages"))
    with TestClient(s.app):
        yield s


def form(client: TestClient, **fields: str) -> dict[str, str]:
    return {"csrf_token": client.headers["x-csrf-token"], **fields}


def test_the_memory_page_shows_facts_with_their_source_escaped(site: Site) -> None:
    page = site.client("member-A").get("/memory")
    assert page.status_code == 200
    assert "The user&#39;s editor is &lt;b&gt;vim&lt;/b&gt;" in page.text
    assert "session abc" in page.text
    assert "1 facts" in page.text  # the last sleep's additions
    assert "F1 25% → 75%" in page.text


def test_another_organisation_and_another_user_see_none_of_it(site: Site) -> None:
    for user in ("member-B", "admin-A"):
        page = site.client(user).get("/memory")
        assert page.status_code == 200 and "vim" not in page.text and "tea" not in page.text


def test_editing_keeps_history_and_forgetting_removes_it(site: Site) -> None:
    client = site.client("member-A")
    member = site.users["member-A"]
    fact = site.memory.memories.add(
        member.user_id, member.org_id, NewMemory("preference", "Answers in French")
    )
    r = client.post(f"/memory/{fact.id}/edit", data=form(client, text="Answers in German"))
    assert r.status_code == 303 and r.headers["location"] == f"/memory#m{fact.id}"
    page = client.get("/memory").text
    assert "Answers in German" in page and "Answers in French" not in page
    current = site.memory.list(member.user_id, member.org_id, "preference")[0]
    assert current.text == "Answers in German"
    r = client.post(f"/memory/{current.id}/forget", data=form(client))
    assert r.status_code == 303 and r.headers["location"].startswith("/memory?forgot=m")
    assert f"Forgot m{current.id}." in client.get(r.headers["location"]).text
    assert site.memory.list(member.user_id, member.org_id, "preference", history=True) == []


def test_a_viewer_and_another_user_cannot_change_a_memory(site: Site) -> None:
    viewer = site.client("viewer-A")
    r = viewer.post(f"/memory/{site.fact.id}/forget", data=form(viewer))
    assert r.status_code == 403 and "viewer" in r.text
    other = site.client("admin-A")  # same organisation, not the owner
    r = other.post(f"/memory/{site.fact.id}/edit", data=form(other, text="nope"))
    assert r.status_code == 400 and f"no memory m{site.fact.id}" in r.text
    member = site.users["member-A"]
    assert site.memory.show(member.user_id, member.org_id, site.fact.id)[0].text.endswith("</b>")


def test_a_memory_form_without_the_csrf_token_is_refused(site: Site) -> None:
    client = site.client("member-A")
    del client.headers["x-csrf-token"]
    r = client.post(f"/memory/{site.fact.id}/forget", data={"csrf_token": "forged"})
    assert r.status_code == 403


def test_an_upload_is_learned_with_its_name_as_source(site: Site) -> None:
    client = site.client("member-A")
    note = b"# Project Kiwi\n\nThe Kiwi release ships on the third Friday of March.\n"
    r = client.post(
        "/memory/learn", data=form(client), files={"upload": ("kiwi.md", note, "text/markdown")}
    )
    assert r.status_code == 200, r.text
    assert "Learned upload:kiwi.md (1 chunks)" in r.text
    again = client.post(
        "/memory/learn", data=form(client), files={"upload": ("kiwi.md", note, "text/markdown")}
    )
    assert "Already knew upload:kiwi.md" in again.text
    member = site.users["member-A"]
    chunks = site.memory.list(member.user_id, member.org_id, "chunk")
    assert [c.source for c in chunks] == ["upload:kiwi.md#1"]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/secret", "http://169.254.169.254/latest", "file:///etc/passwd"]
)
def test_learning_a_url_refuses_this_machine_and_private_addresses(site: Site, url: str) -> None:
    client = site.client("member-A")
    r = client.post("/memory/learn", data=form(client, url=url))
    assert r.status_code == 400 and "cannot learn" in r.text


def test_the_eval_pages_list_show_and_compare_runs(site: Site) -> None:
    client = site.client("viewer-A")
    listing = client.get("/eval")
    assert listing.status_code == 200
    assert listing.text.count('<svg class="chart"') == 1
    assert site.run_a[:8] in listing.text and "1/2 (50%)" in listing.text
    run = client.get(f"/eval/{site.run_a}")
    assert run.status_code == 200 and "&lt;coding&gt;" in run.text and "<coding>" not in run.text
    compare = client.get(f"/eval/compare?a={site.run_a}&b={site.run_b}")
    assert compare.status_code == 200
    assert "From A to B: 1 fixed, 1 broken." in compare.text
    missing = client.get("/eval/nosuchrun")
    assert missing.status_code == 400 and "no eval run" in missing.text


def test_the_learning_page_draws_sleeps_and_the_benchmark_when_present(site: Site) -> None:
    client = site.client("member-A")
    page = client.get("/learning")
    assert page.status_code == 200 and "Self-test F1 (%) before and after each sleep" in page.text
    assert "No benchmark results here" in page.text
    site.bench.write_text(
        json.dumps(
            {
                "config": {"passages": "4:6", "questions": 9, "model": "m"},
                "base": {"em": 10.0, "f1": 20.0},
                "passage": {"em": 60.0, "f1": 70.0},
                "after_sleep": {"em": 40.0, "f1": 50.0},
                "forgetting": [
                    {"day": 1, "em": 40.0, "f1": 50.0, "passage_recall": 100},
                    {"day": 2, "em": 38.0, "f1": 49.0, "passage_recall": 100},
                ],
            }
        )
    )
    page = client.get("/learning")
    assert page.text.count('<svg class="chart"') == 4
    assert "Day-1 questions answered from memory" in page.text


def test_chart_labels_and_names_are_escaped() -> None:
    svg = charts.bars("<t>", ["<script>"], [charts.Series("a&b", [0.5])])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg
    assert 'aria-label="&lt;t&gt;"' in svg


def test_desktop_sign_in_is_one_time_and_from_this_machine_only(site: Site) -> None:
    admin = site.users["admin-A"]
    token = site.svc.users.sign_in_link(admin.user_id)
    remote = site.client(at=("203.0.113.9", 4000)).get(f"/auth/desktop?token={token}")
    assert remote.status_code == 403
    proxied = site.client().get(
        f"/auth/desktop?token={token}", headers={"x-forwarded-for": "203.0.113.9"}
    )
    assert proxied.status_code == 403
    local = site.client()
    r = local.get(f"/auth/desktop?token={token}&next=/memory")
    assert r.status_code == 303 and r.headers["location"] == "/memory"
    assert local.get("/api/me").json()["username"] == "admin-A"
    again = site.client().get(f"/auth/desktop?token={token}")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")
    stale = site.svc.users.sign_in_link(admin.user_id, seconds=-1)
    r = site.client().get(f"/auth/desktop?token={stale}")
    assert r.headers["location"].startswith("/login")
    assert re.fullmatch(r"[\w-]{40,}", token)
    assert site.svc.users.user_for_login(token) is None  # the token is never a cookie
