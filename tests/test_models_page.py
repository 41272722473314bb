"""The models page: registered models pulled or not, a pull with progress, each org's default."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fixtures import replay_file

from spud.config import Settings
from spud.models.registry import REGISTRY, ModelSpec, PyPIFile
from spud.server.app import create_app
from spud.server.settings import ServerSettings
from spud.service.hub import Services
from spud.service.tasks import TaskSpec

PASSWORD = "password-123"
FINISH = [{"calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]


class Site:
    """A server offering two replay models; acme (ada admin, bob member, vic viewer), other."""

    def __init__(self, tmp: Path) -> None:
        self.main = replay_file(tmp / "main.json", FINISH)
        self.second = replay_file(tmp / "second.json", FINISH)
        settings = Settings(home=tmp / "home", model=self.main, model_cache=tmp / "cache")
        self.svc = Services(settings, extra_models=[self.second])
        self.app = create_app(self.svc, ServerSettings(nightly_sleep=False))
        self.people = {
            name: self.svc.users.add_user(name, PASSWORD, org, role)
            for name, org, role in [
                ("ada", "acme", "admin"),
                ("bob", "acme", "member"),
                ("vic", "acme", "viewer"),
                ("oz", "other", "admin"),
            ]
        }

    def browser(self, name: str) -> tuple[TestClient, str]:
        client = TestClient(self.app)
        r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get("/models").text)
        assert token
        return client, token.group(1)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    with TestClient(s.app):
        yield s


def fake_model(tmp: Path, monkeypatch: pytest.MonkeyPatch, sha256: str | None = None) -> str:
    """A registered model whose source is a package already on the path (no network)."""
    package = tmp / "pkgs" / "spud_fake_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    data = bytes(range(256)) * 20_000  # 5 MB: more than one chunk of progress
    (package / "tiny.gguf").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp / "pkgs"))
    spec = ModelSpec(
        name="tiny-test",
        description="a test file",
        filename="tiny-test.gguf",
        size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        context_window=2048,
        license="MIT",
        sources=[PyPIFile(package="spud-fake-model", version="0.0.1", relpath="tiny.gguf")],
    )
    monkeypatch.setitem(REGISTRY, spec.name, spec)
    return spec.name


def row_of(page: str, name: str) -> str:
    found = re.search(rf"<tr>\s*<td><code>{re.escape(name)}</code>.*?</tr>", page, re.S)
    assert found, page
    return found.group(0)


def wait_for_pull(client: TestClient, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        jobs = {j["name"]: j for j in client.get("/api/models/pulls").json()}
        if jobs.get(name, {}).get("state") not in (None, "running"):
            return jobs[name]
        assert time.monotonic() < deadline, "the pull did not end"
        time.sleep(0.05)


def test_the_page_lists_registered_models_pulled_or_not_and_offered_ones(site: Site) -> None:
    client, _ = site.browser("bob")
    page = client.get("/models").text
    for name in REGISTRY:
        assert "not pulled" in row_of(page, name)
    assert "remote or given (offered)" in row_of(page, site.second)
    assert f'<strong id="default-model">{site.main}</strong>' in page
    assert 'action="/models/pull"' not in page and 'action="/models/default"' not in page


def test_an_admin_pulls_a_model_in_the_background_and_sees_it_pulled(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = fake_model(tmp_path, monkeypatch)
    client, token = site.browser("ada")
    r = client.post(
        "/models/pull", data={"csrf_token": token, "name": name}, follow_redirects=False
    )
    assert r.status_code == 303
    job = wait_for_pull(client, name)
    assert job["state"] == "done", job
    assert job["done"] == job["total"] == REGISTRY[name].size  # progress reached the end
    assert "pulled</span>" in row_of(client.get("/models").text, name)
    assert name in site.svc.pool.names()  # offered now: it can be the default


def test_a_failed_pull_says_why(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = fake_model(tmp_path, monkeypatch, sha256="0" * 64)
    client, token = site.browser("ada")
    client.post("/models/pull", data={"csrf_token": token, "name": name})
    assert wait_for_pull(client, name)["state"] == "failed"
    row = row_of(client.get("/models").text, name)
    assert "The last pull failed" in row and "corrupt" in row and "Pull tiny-test" in row


def test_the_default_model_is_per_organisation_and_used_by_tasks(site: Site) -> None:
    client, token = site.browser("ada")
    r = client.post(
        "/models/default",
        data={"csrf_token": token, "model": site.second},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert f'<strong id="default-model">{site.second}</strong>' in client.get("/models").text
    bob, oz = site.people["bob"], site.people["oz"]
    assert site.svc.tasks.create(bob, TaskSpec(prompt="do it")).model == site.second
    assert site.svc.tasks.create(oz, TaskSpec(prompt="do it")).model == site.main  # theirs
    assert site.svc.tasks.create(bob, TaskSpec(prompt="x", model=site.main)).model == site.main


def test_the_default_must_be_a_model_offered_here(site: Site) -> None:
    client, token = site.browser("ada")
    r = client.post("/models/default", data={"csrf_token": token, "model": "qwen2.5-coder-1.5b"})
    assert r.status_code == 400 and "pull it first" in r.text
    assert site.svc.sessions.catalog.default(site.people["ada"].org_id) == site.main


@pytest.mark.parametrize("name", ["bob", "vic"])
def test_only_admins_choose_the_default_or_pull(site: Site, name: str) -> None:
    client, token = site.browser(name)
    r = client.post("/models/default", data={"csrf_token": token, "model": site.second})
    assert r.status_code == 403
    r = client.post("/models/pull", data={"csrf_token": token, "name": "smollm2-135m"})
    assert r.status_code == 403
    assert site.svc.sessions.catalog.default(site.people[name].org_id) == site.main
    assert site.svc.sessions.catalog.pulls() == []


def test_the_cli_shows_and_sets_an_organisations_default(site: Site, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SPUD_HOME": str(tmp_path / "home"),
        "SPUD_CONFIG": str(tmp_path / "none.toml"),
        "SPUD_MODEL": site.main,
        "SPUD_SERVER_MODELS": json.dumps([site.second]),
        "COLUMNS": "200",
    }

    def spud(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "spud", "models", "default", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)

    out = spud(site.second, "--org", "acme")
    assert out.returncode == 0 and f"default model of acme: {site.second}" in out.stdout
    assert site.svc.sessions.catalog.default(site.people["bob"].org_id) == site.second
    refused = spud("no-such-model", "--org", "acme")
    assert refused.returncode == 1 and "is not offered here" in refused.stdout
    assert f"default model of other: {site.main}" in spud("--org", "other").stdout
