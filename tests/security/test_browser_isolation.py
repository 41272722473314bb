"""Attacks on the browser tools: Chromium's sandbox, redirects, WebSockets, rebinding, fetch().

Two local servers stand for the world: the test sites on 127.0.0.1 (allowed) and an
"internal service" on 127.0.0.2, on the same port, that the policy blocks. The internal
server records every connection that reaches it; each attack must leave it untouched.

Chromium's Local Network Access check stops a document that Spud loaded (Playwright fulfils
it, so it counts as public) from reaching loopback by itself; a dedicated worker, whose
script comes straight from the loopback site, is not held back by it, so the attacks run
from page JS in a worker as well as in the document.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from spud import browser_policy
from spud.browser_policy import BrowserPolicy
from spud.tools.browser import launch
from spud.tools.browser import session as session_module
from spud.tools.browser.session import BrowserSession
from spud.tools.browser.tools import browser_tools

sys.path.insert(0, str(Path(__file__).parents[1]))
from sites.server import SiteHandler  # noqa: E402

CHROMIUM = Path(BrowserPolicy().executable_path)
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
SECRET = "INTERNAL-SECRET-7731"


class Internal:
    """A raw TCP service on 127.0.0.2 that logs every connection and answers with a secret."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.2", port))
        self.hits: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.hits.append(conn.recv(4096))
                    body = SECRET.encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n"
                        b"Content-Type: text/plain\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\nConnection: close\r\n\r\n"
                        + body
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


WORKER_JS = b"""onmessage = async (e) => {
  const {kind, url} = e.data;
  try {
    if (kind === "fetch") postMessage(await (await fetch(url)).text());
    else if (kind === "events") {
      const es = new EventSource(url);
      es.onerror = () => { es.close(); postMessage("error"); };
      es.onmessage = (m) => postMessage(m.data);
    } else if (kind === "ws") {
      const ws = new WebSocket(url);
      ws.onopen = () => postMessage("open"); ws.onerror = () => postMessage("error");
    } else { importScripts(url); postMessage("script ran"); }
  } catch (x) { postMessage("failed: " + x); }
};"""


class AllowedSite(SiteHandler):
    """The test sites plus /worker.js, a worker that fetches or imports what it is told."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/worker.js":
            self.server.log.append("GET /worker.js")  # type: ignore[attr-defined]
            self._send(WORKER_JS, "text/javascript")
        else:
            super().do_GET()


class World:
    def __init__(self) -> None:
        self.site = ThreadingHTTPServer(("127.0.0.1", 0), AllowedSite)
        self.site.daemon_threads = True
        self.site.log = []  # type: ignore[attr-defined]
        self.site.posts = []  # type: ignore[attr-defined]
        threading.Thread(target=self.site.serve_forever, daemon=True).start()
        self.port = self.site.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.internal = Internal(self.port)
        self.internal_url = f"http://127.0.0.2:{self.port}"

    @property
    def log(self) -> list[str]:
        return self.site.log  # type: ignore[attr-defined]

    def close(self) -> None:
        self.site.shutdown()
        self.site.server_close()
        self.internal.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


@pytest.fixture
def policy() -> BrowserPolicy:
    """The sites on 127.0.0.1 are allowed; the internal service's address is not."""
    return BrowserPolicy(allow_loopback=True, blocked_domains=["127.0.0.2"], timeout_s=5)


@pytest.fixture
def session(workspace: Path, policy: BrowserPolicy, world: World) -> Iterator[BrowserSession]:
    s = BrowserSession(workspace, policy)
    world.internal.hits.clear()
    yield s
    s.close()


def open_page(session: BrowserSession, url: str) -> None:
    tools = {t.name: t for t in browser_tools(session.files.workspace, session=session)}
    res = tools["browser_open"].run(tools["browser_open"].Args(url=url))
    assert res.ok, res.output


def in_worker(session: BrowserSession, kind: str, url: str) -> str:
    """Run fetch(url) or importScripts(url) in a dedicated worker of the current page."""
    return session.page().evaluate(
        """([kind, url]) => new Promise((done) => {
            const w = new Worker("/worker.js");
            w.onmessage = (e) => done(String(e.data)); w.onerror = (e) => done("error");
            w.postMessage({kind, url});
        })""",
        [kind, url],
    )


def two_hops(world: World, target: str) -> str:
    """A same-site redirect to a same-site redirect to target."""
    second = quote(f"{world.url}/redirect?to={quote(target, safe='')}", safe="")
    return f"{world.url}/redirect?to={second}"


def resolve_rebind_test_to_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: Spud's own lookup of rebind.test says 127.0.0.1 (allowed) while
    Chromium's resolver, asked separately, says 127.0.0.2 (the internal service)."""
    real = browser_policy._resolve

    def lookup(host: str) -> list[str]:
        return ["127.0.0.1"] if host == "rebind.test" else real(host)

    monkeypatch.setattr(browser_policy, "_resolve", lookup)
    args = [*launch.BROWSER_LAUNCH_ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.2"]
    monkeypatch.setattr(session_module, "BROWSER_LAUNCH_ARGS", args)  # where it is read


# -- Chromium's own sandbox ----------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_chromium_runs_unprivileged_with_its_sandbox_on(
    monkeypatch: pytest.MonkeyPatch, session: BrowserSession, world: World
):
    monkeypatch.setenv("SPUD_TEST_API_KEY", "sk-do-not-leak")
    open_page(session, f"{world.url}/index.html")
    chromium = []
    for pid in _descendants(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode() for a in argv if a]
        if len(args) == 1:  # Chromium rewrites its children's command line into one string
            args = args[0].split(" ")
        if args and args[0].endswith("/chromium"):
            chromium.append((pid, args))
    browser = [p for p, argv in chromium if not any(a.startswith("--type=") for a in argv)]
    renderers = [p for p, argv in chromium if "--type=renderer" in argv]
    assert browser and renderers, chromium
    for pid, argv in chromium:
        uids = _status(pid)["Uid"].split()
        assert "0" not in uids, f"Chromium process {pid} runs as root: {argv[:3]}"
        assert "--no-sandbox" not in argv, f"Chromium process {pid} runs with --no-sandbox"
        assert b"sk-do-not-leak" not in Path(f"/proc/{pid}/environ").read_bytes()
    for pid in renderers:
        assert _status(pid)["Seccomp"] == "2", "the renderer has no seccomp-bpf filter"
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")


# -- what the page can reach ---------------------------------------------------------------


def test_subresource_redirect_second_hop_to_blocked_address(session: BrowserSession, world: World):
    open_page(session, f"{world.url}/index.html")
    chain = two_hops(world, f"{world.internal_url}/x.png")
    session.page().evaluate(
        """async (src) => {
            const load = (el) => new Promise((done) => {
                el.onload = el.onerror = () => done(); document.body.appendChild(el); });
            const img = document.createElement("img"); img.src = src; await load(img);
            const script = document.createElement("script"); script.src = src + "&s=1";
            await load(script);
        }""",
        chain,
    )
    assert SECRET not in in_worker(session, "fetch", chain)
    in_worker(session, "script", two_hops(world, f"{world.internal_url}/x.js"))
    assert sum(line.startswith("GET /redirect") for line in world.log) >= 4  # first hops ran
    assert world.internal.hits == []


def test_websocket_to_blocked_address(session: BrowserSession, world: World):
    open_page(session, f"{world.url}/index.html")
    state = session.page().evaluate(
        """(url) => new Promise((done) => {
            const ws = new WebSocket(url);
            ws.onopen = () => done("open"); ws.onerror = () => done("error");
            setTimeout(() => done("timeout"), 4000);
        })""",
        f"ws://127.0.0.2:{world.port}/socket",
    )
    assert state == "error"
    assert world.internal.hits == []


def test_dns_rebinding_subresource_uses_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, workspace: Path, policy: BrowserPolicy, world: World
):
    resolve_rebind_test_to_allowed(monkeypatch)
    world.internal.hits.clear()
    session = BrowserSession(workspace, policy)
    try:
        open_page(session, f"{world.url}/index.html")
        text = in_worker(session, "fetch", f"http://rebind.test:{world.port}/page2.html")
        assert SECRET not in text
        assert world.internal.hits == []  # the connection went to the address that was checked
        assert "GET /page2.html" in world.log  # ... which is the allowed site
    finally:
        session.close()


def test_fetch_from_page_js_to_blocked_address(
    monkeypatch: pytest.MonkeyPatch, workspace: Path, policy: BrowserPolicy, world: World
):
    resolve_rebind_test_to_allowed(monkeypatch)
    world.internal.hits.clear()
    session = BrowserSession(workspace, policy)
    try:
        open_page(session, f"{world.url}/index.html")
        targets = [
            f"{world.internal_url}/direct",
            f"{world.url}/redirect?to={quote(world.internal_url + '/hop', safe='')}",
            f"http://rebind.test:{world.port}/rebound",
        ]
        results = session.page().evaluate(
            """async (urls) => Promise.all(urls.map(async (url) => {
                try { return await (await fetch(url, {mode: "cors"})).text(); }
                catch (e) { return "blocked"; }
            }))""",
            targets,
        )
        assert not any(SECRET in text for text in results), results
        for url in targets:
            assert SECRET not in in_worker(session, "fetch", url)
        assert world.internal.hits == []
    finally:
        session.close()


def test_navigation_to_blocked_address_is_refused_and_reported(
    session: BrowserSession, world: World
):
    tools = {t.name: t for t in browser_tools(session.files.workspace, session=session)}
    res = tools["browser_open"].run(tools["browser_open"].Args(url=f"{world.internal_url}/"))
    assert not res.ok and "127.0.0.2" in res.output
    open_page(session, f"{world.url}/index.html")
    bounce = f"{world.url}/redirect?to={quote(world.internal_url + '/admin', safe='')}"
    res = tools["browser_open"].run(tools["browser_open"].Args(url=bounce))
    assert not res.ok and "127.0.0.2" in res.output
    assert world.internal.hits == []


def test_other_ways_from_page_js_to_the_internal_address(session: BrowserSession, world: World):
    """Other spellings of the address and other request kinds, from the page and a worker."""
    open_page(session, f"{world.url}/index.html")
    port = world.port
    leaked = []
    for kind, url in [
        ("fetch", f"http://2130706434:{port}/decimal"),
        ("fetch", f"http://0x7f000002:{port}/hex"),
        ("fetch", f"http://[::ffff:7f00:2]:{port}/mapped"),
        ("fetch", two_hops(world, f"http://2130706434:{port}/decimal-hop")),
        ("events", two_hops(world, f"{world.internal_url}/events")),
        ("ws", f"ws://0x7f000002:{port}/ws"),
        ("script", f"http://[::ffff:127.0.0.2]:{port}/x.js"),
    ]:
        before = len(world.internal.hits)
        in_worker(session, kind, url)
        if len(world.internal.hits) > before:
            leaked.append((kind, url))
    page = session.page()
    page.evaluate(
        """(urls) => { navigator.sendBeacon(urls[0], "data");
            const f = document.createElement("iframe"); f.src = urls[1];
            document.body.appendChild(f);
            const l = document.createElement("link"); l.rel = "prefetch"; l.href = urls[2];
            document.head.appendChild(l); }""",
        [
            two_hops(world, f"{world.internal_url}/beacon"),
            two_hops(world, f"{world.internal_url}/frame"),
            two_hops(world, f"{world.internal_url}/prefetch"),
        ],
    )
    page.wait_for_timeout(1500)
    assert leaked == [] and world.internal.hits == []
