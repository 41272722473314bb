"""Usage and budgets as people meet them: a task stopped by a budget, the usage page, `spud usage`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file

from spud.config import Price, Settings
from spud.core.messages import Usage
from spud.core.run import Limits
from spud.models.prices import cost_of, price_of
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.service.sessions import RunSpec, SessionService
from spud.service.tasks import TaskInfo, TaskSpec
from spud.service.usage import parse_since
from spud.service.users import Principal

STEP_COST = 0.006  # what each recorded reply of the replay model says it cost
PASSWORD = "password-123"


def paid_steps(n: int) -> list[dict[str, Any]]:
    """n different shell steps, each reporting STEP_COST, then a finish."""
    steps: list[dict[str, Any]] = [
        {
            "calls": [{"name": "bash", "arguments": {"command": f"echo {i} > f{i}.txt"}}],
            "cost_usd": STEP_COST,
        }
        for i in range(n)
    ]
    return [*steps, {"calls": [{"name": "finish", "arguments": {"summary": "wrote files"}}]}]


class Org:
    """A server over a replay model: organisation acme (ada admin, bob and cy members, vic a
    viewer) and organisation other (oz, its admin)."""

    def __init__(self, tmp: Path, db_url: str) -> None:
        self.home = tmp / "home"
        self.db_url = db_url
        model = replay_file(tmp / "agent.json", paid_steps(4))
        self.svc = Services(Settings(home=self.home, model=model, db_url=db_url))
        self.app = create_app(self.svc, ServerSettings(nightly_sleep=False))
        self.people: dict[str, Principal] = {}
        for name, org, role in [
            ("ada", "acme", "admin"),
            ("bob", "acme", "member"),
            ("cy", "acme", "member"),
            ("vic", "acme", "viewer"),
            ("oz", "other", "admin"),
        ]:
            self.people[name] = self.svc.users.add_user(name, PASSWORD, org, role)

    def run_task(self, name: str, prompt: str = "write the files") -> TaskInfo:
        who = self.people[name]
        task = self.svc.tasks.create(who, TaskSpec(prompt=prompt, workspace=f"w-{time.time_ns()}"))
        wait(lambda: self.svc.tasks.get(who, task.id).status not in ("queued", "running"))
        return self.svc.tasks.get(who, task.id)

    def spent(self, name: str) -> Any:
        who = self.people[name]
        return self.svc.sessions.usage.spent(who.org_id, who.user_id)

    def page_client(self, name: str) -> tuple[TestClient, str]:
        """A browser signed in as name, and the CSRF token its forms carry."""
        client = TestClient(self.app)
        r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        page = client.get("/usage")
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert token, page.text[:300]
        return client, token.group(1)


def wait(ready: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def org(tmp_path: Path, db_url: str) -> Iterator[Org]:
    o = Org(tmp_path, db_url)
    with TestClient(o.app):  # the app's lifespan: task workers run, closed after
        yield o


def spud(org: Org, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI on the organisation's store."""
    env = {
        **os.environ,
        "SPUD_HOME": str(org.home),
        "SPUD_CONFIG": str(org.home / "none.toml"),
        "SPUD_DB_URL": org.db_url,
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "spud", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.databases
def test_a_tiny_budget_stops_the_task_and_the_spend_shows_everywhere(org: Org) -> None:
    acme = org.people["ada"].org_id
    org.svc.sessions.usage.budgets.set(acme, org.people["bob"].user_id, usd=0.01, set_by="ada")

    task = org.run_task("bob")

    # two paid steps ($0.012) spend the $0.01; the run stops before the third
    assert task.status == "limit:budget"
    assert "$0.0120 of $0.0100 spent by bob this month" in task.summary
    assert task.steps == 2
    bob = org.spent("bob")
    assert (bob.calls, round(bob.cost_usd, 6)) == (2, 0.012)
    # nothing else is charged: not the others, not the organisation beyond bob's, not another
    assert org.spent("cy").calls == org.spent("ada").calls == 0
    assert org.svc.sessions.usage.spent(acme).cost_usd == pytest.approx(0.012)
    assert org.svc.sessions.usage.spent(org.people["oz"].org_id).calls == 0

    # a new task of bob's stops before its first model call, and costs nothing
    again = org.run_task("bob", "write more files")
    assert again.status == "limit:budget" and again.steps == 0
    assert org.spent("bob").calls == 2

    # the usage page: the admin sees bob's spend and his budget spent
    admin, _ = org.page_client("ada")
    page = admin.get("/usage", params={"by": "user"}).text
    row = re.search(r"<tr>\s*<td>bob</td>\s*<td>\$([0-9.]+)</td>", page)
    assert row and row.group(1) == "0.0120", page
    assert "spent</span>" in page
    # bob sees his own: his task with its cost, and that his budget is spent
    mine, _ = org.page_client("bob")
    page = mine.get("/usage", params={"by": "task"}).text
    assert "write the files" in page and "$0.0120" in page and "spent</span>" in page

    # `spud usage` on the same store says the same
    out = spud(org, "usage", "--by", "user")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if " bob " in f" {ln} ")
    assert "$0.0120" in line and "cy" not in out.stdout
    listed = spud(org, "budgets", "list")
    assert "bob" in listed.stdout and "spent" in listed.stdout, listed.stdout


@pytest.mark.databases
def test_an_organisation_budget_stops_everyone_in_it_and_no_one_outside(org: Org) -> None:
    acme = org.people["ada"].org_id
    org.svc.sessions.usage.budgets.set(acme, usd=0.005, period="day")

    task = org.run_task("cy")
    assert task.status == "limit:budget"
    assert "spent by organisation acme today" in task.summary
    assert org.run_task("ada").steps == 0  # the admin too: the organisation's money is spent
    outside = org.run_task("oz")
    assert outside.status == "finished" and outside.steps == 5


def test_a_seconds_budget_stops_runs_on_local_models_too(org: Org) -> None:
    bob = org.people["bob"]
    org.svc.sessions.usage.budgets.set(bob.org_id, bob.user_id, seconds=0.0)
    task = org.run_task("bob")
    assert task.status == "limit:budget" and "model seconds used by bob" in task.summary


@pytest.mark.databases
def test_members_see_only_their_own_usage(org: Org) -> None:
    org.run_task("cy")
    bob_key = org.svc.users.create_key(org.people["bob"].user_id)[1]
    client = TestClient(org.app, headers={"Authorization": f"Bearer {bob_key}"})
    mine = client.get("/api/usage", params={"by": "user"}).json()
    assert mine["total"]["calls"] == 0 and mine["lines"] == []
    ada_key = org.svc.users.create_key(org.people["ada"].user_id)[1]
    client = TestClient(org.app, headers={"Authorization": f"Bearer {ada_key}"})
    everyone = client.get("/api/usage", params={"by": "user"}).json()
    assert [line["label"] for line in everyone["lines"]] == ["cy"]
    assert everyone["total"]["cost_usd"] == pytest.approx(4 * STEP_COST)


@pytest.mark.parametrize("name", ["vic", "bob"])
def test_only_admins_set_budgets(org: Org, name: str) -> None:
    client, token = org.page_client(name)
    target = org.people["cy"].user_id
    r = client.post("/usage/budgets", data={"csrf_token": token, "target": target, "usd": "1.00"})
    assert r.status_code == 403 and "only admins set budgets" in r.text
    assert org.svc.sessions.usage.budgets.list() == []
    page = client.get("/usage").text
    assert 'action="/usage/budgets"' not in page  # no form to try with


@pytest.mark.databases
def test_an_admin_sets_and_removes_budgets_from_the_page(org: Org) -> None:
    client, token = org.page_client("ada")
    bob = org.people["bob"]
    r = client.post(
        "/usage/budgets",
        data={"csrf_token": token, "target": bob.user_id, "usd": "$1.50", "period": "day"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    [budget] = org.svc.sessions.usage.budgets.list(bob.org_id)
    assert (budget.user_id, budget.usd, budget.period, budget.set_by) == (
        bob.user_id,
        1.5,
        "day",
        "ada",
    )
    assert "$1.5000" in client.get("/usage").text
    bad = client.post("/usage/budgets", data={"csrf_token": token, "target": "org"})
    assert bad.status_code == 400 and "a budget needs an amount" in bad.text
    # another organisation's admin cannot reach acme's people
    other, other_token = org.page_client("oz")
    r = other.post(
        "/usage/budgets", data={"csrf_token": other_token, "target": bob.user_id, "usd": "0"}
    )
    assert r.status_code == 404
    r = client.post(
        "/usage/budgets/clear",
        data={"csrf_token": token, "target": bob.user_id},
        follow_redirects=False,
    )
    assert r.status_code == 303 and org.svc.sessions.usage.budgets.list() == []


@pytest.mark.databases
def test_the_cli_sets_budgets_and_refuses_bad_ones(org: Org) -> None:
    out = spud(org, "budgets", "set", "--user", "bob", "--usd", "1.00")
    assert out.returncode == 0 and "budget of bob: $1.0000 (a month)" in out.stdout, out.stderr
    [budget] = org.svc.sessions.usage.budgets.list()
    assert budget.usd == 1.0 and budget.user_id == org.people["bob"].user_id
    bad = spud(org, "budgets", "set", "--user", "bob", "--usd", "1", "--period", "week")
    assert bad.returncode == 1 and "the period must be one of day, month, total" in bad.stdout
    nobody = spud(org, "budgets", "set", "--user", "nobody", "--usd", "1")
    assert nobody.returncode == 1 and "no user 'nobody'" in nobody.stdout


def test_remote_models_are_priced_from_the_table_and_the_config() -> None:
    assert price_of("openai:gpt-4o-mini-2024-07-18") == price_of("openai:gpt-4o-mini")
    assert price_of("openai:gpt-4o").input_per_mtok == 2.5  # type: ignore[union-attr]
    assert price_of("qwen2.5-coder-0.5b") is None  # local: model seconds, no money
    mine = {"openai:my-vllm": Price(input_per_mtok=1.0, output_per_mtok=2.0)}
    used = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, seconds=3.0)
    assert cost_of(used, price_of("openai:my-vllm", mine)) == pytest.approx(2.0)
    reported = Usage(prompt_tokens=10, cost_usd=0.5)
    assert cost_of(reported, price_of("openai:gpt-4o")) == 0.5  # what the provider said stands


def test_a_priced_model_costs_in_the_session_and_its_cost_limit_stops_it(tmp_path: Path) -> None:
    """A model that reports no cost (like a remote one) is priced by the config's table; the
    price reaches the run's own cost limit (limit:cost), not only the ledger."""
    model = replay_file(
        tmp_path / "m.json",
        [{k: v for k, v in s.items() if k != "cost_usd"} for s in paid_steps(3)],
    )
    settings = Settings(
        home=tmp_path / "home",
        model=model,
        prices={model: Price(input_per_mtok=10_000.0)},  # $0.01 per prompt token
    )
    svc = SessionService(settings)
    result = svc.execute(
        RunSpec(workspace=tmp_path, task="write the files", limits=Limits(max_cost_usd=5.0))
    )
    assert result.status == "limit:cost"
    assert result.cost_usd == pytest.approx(result.prompt_tokens * 0.01)
    ledger = svc.usage.spent("local", "local")
    assert ledger.cost_usd == pytest.approx(result.cost_usd)
    assert ledger.prompt_tokens == result.prompt_tokens


def test_since_takes_words_dates_and_spans() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    assert parse_since("month", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("day", now) == datetime(2026, 12, 2, tzinfo=UTC)
    assert parse_since("week", now) == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_since("24h", now) == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert parse_since("2026-11-15", now) == datetime(2026, 11, 15, tzinfo=UTC)
    assert parse_since("all", now) is None
    with pytest.raises(Exception, match="use day, week, month, all"):
        parse_since("yesterday-ish", now)
