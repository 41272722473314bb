"""The allowlist proxy on real sockets: blocked targets get 403, allowed ones pass, addresses pin."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spud.sandbox.proxy import AllowlistProxy, address_reason, ranges_check

ALLOWED_IP, INTERNAL_IP = "127.0.0.1", "127.0.0.2"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told to close

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        sent = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.log.append((self.requestline, {"body": sent.decode()}))  # type: ignore[attr-defined]
        self._answer(f"got {sent.decode()}")

    def do_GET(self) -> None:  # noqa: N802
        self.server.log.append((self.requestline, dict(self.headers)))  # type: ignore[attr-defined]
        self._answer(f"served by {self.server.name}")  # type: ignore[attr-defined]

    def _answer(self, text: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Site:
    """A tiny HTTP server that records every request line and says which server it is."""

    def __init__(self, ip: str, name: str, port: int = 0) -> None:
        self.server = ThreadingHTTPServer((ip, port), _Handler)
        self.server.daemon_threads = True
        self.server.log = []  # type: ignore[attr-defined]
        self.server.name = name  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.ip = ip
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def log(self) -> list[tuple[str, dict[str, str]]]:
        return self.server.log  # type: ignore[attr-defined]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Site, Site]]:
    allowed = Site(ALLOWED_IP, "allowed")
    internal = Site(INTERNAL_IP, "internal", allowed.port)  # same port: only the address differs
    yield allowed, internal
    allowed.close()
    internal.close()


def only_allowed_ip(ip: str, host: str, port: int) -> str | None:
    """The test policy: only 127.0.0.1 may be reached (the internal service is 127.0.0.2)."""
    return None if ip == ALLOWED_IP else f"{ip} is an internal address"


def ask(address: tuple[str, int] | str, request: bytes) -> bytes:
    """Send raw bytes to the proxy and read until it closes."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def connect_then_get(proxy: AllowlistProxy, target: str, host: str) -> tuple[bytes, bytes]:
    """CONNECT to target, then send a GET through the tunnel; (CONNECT reply, GET reply)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                return reply, b""
            reply += chunk
        if not reply.startswith(b"HTTP/1.1 200"):
            return reply, b""
        sock.sendall(f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return reply, data


def test_connect_to_blocked_address_is_403_and_never_reaches_it(sites: tuple[Site, Site]):
    allowed, internal = sites
    with AllowlistProxy(lambda h, p: None, address_check=only_allowed_ip) as proxy:
        reply, _ = connect_then_get(proxy, f"{INTERNAL_IP}:{internal.port}", INTERNAL_IP)
        assert reply.startswith(b"HTTP/1.1 403 Forbidden")
        assert b"127.0.0.2 is an internal address" in reply
        reply, body = connect_then_get(proxy, f"{ALLOWED_IP}:{allowed.port}", ALLOWED_IP)
        assert reply.startswith(b"HTTP/1.1 200") and body.endswith(b"served by allowed")
    assert internal.log == []
    assert [d.allowed for d in proxy.decisions] == [False, True]


def test_plain_http_is_forwarded_in_origin_form_or_refused(sites: tuple[Site, Site]):
    allowed, internal = sites
    with AllowlistProxy(lambda h, p: None, address_check=only_allowed_ip) as proxy:
        url = f"http://{ALLOWED_IP}:{allowed.port}/page?q=1"
        req = f"GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n"
        reply = ask(("127.0.0.1", proxy.port), req.encode())
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"served by allowed")
        line, headers = allowed.log[-1]
        assert line == "GET /page?q=1 HTTP/1.1" and "Proxy-Connection" not in headers
        assert headers["Connection"] == "close"
        url = f"http://{INTERNAL_IP}:{internal.port}/secret"
        reply = ask(("127.0.0.1", proxy.port), f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.1 403") and b"internal address" in reply
    assert internal.log == []


def test_a_reused_plain_http_connection_never_carries_a_second_host(sites: tuple[Site, Site]):
    """Keep-alive through a proxy may reuse one connection for another host: the second
    request must not be piped to the first host's (checked) address."""
    allowed, internal = sites
    with AllowlistProxy(lambda h, p: None, address_check=only_allowed_ip) as proxy:
        before = len(allowed.log)
        first = f"GET http://{ALLOWED_IP}:{allowed.port}/one HTTP/1.1\r\nHost: a\r\n\r\n"
        second = f"GET http://{INTERNAL_IP}:{allowed.port}/two HTTP/1.1\r\nHost: b\r\n\r\n"
        reply = ask(("127.0.0.1", proxy.port), (first + second).encode())
        assert reply.count(b"served by") == 1 and b"Connection: close" in reply
        assert [line for line, _ in allowed.log[before:]] == ["GET /one HTTP/1.1"]
        post = f"POST http://{ALLOWED_IP}:{allowed.port}/form HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
        reply = ask(("127.0.0.1", proxy.port), (post + "a=1&b" + second).encode())
        assert reply.endswith(b"got a=1&b") and allowed.log[-1][1] == {"body": "a=1&b"}
        chunked = post.replace("Content-Length: 5", "Transfer-Encoding: chunked")
        reply = ask(("127.0.0.1", proxy.port), (chunked + "5\r\na=1&b\r\n0\r\n\r\n").encode())
        assert reply.startswith(b"HTTP/1.1 411")
    assert internal.log == []


def test_unix_socket_serves_the_same_policy(sites: tuple[Site, Site]):
    allowed, internal = sites
    with AllowlistProxy(lambda h, p: None, address_check=only_allowed_ip) as proxy:
        assert proxy.unix_path and proxy.unix_path.endswith(".sock")
        ok = f"GET http://{ALLOWED_IP}:{allowed.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
        assert ask(proxy.unix_path, ok.encode()).endswith(b"served by allowed")
        bad = f"CONNECT {INTERNAL_IP}:{internal.port} HTTP/1.1\r\n\r\n"
        assert ask(proxy.unix_path, bad.encode()).startswith(b"HTTP/1.1 403")
        path = proxy.unix_path
    assert internal.log == []
    with pytest.raises(OSError):
        ask(path, b"GET / HTTP/1.1\r\n\r\n")  # closed and removed


def test_dns_rebinding_connects_to_the_checked_address(sites: tuple[Site, Site]):
    """A resolver that answers allowed first and internal second: each request is resolved
    once, and the connection goes to exactly the address that was checked."""
    allowed, internal = sites
    answers = [[ALLOWED_IP], [INTERNAL_IP], [INTERNAL_IP]]
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[len(calls) - 1]

    with AllowlistProxy(
        lambda h, p: None, address_check=only_allowed_ip, resolver=rebinding
    ) as proxy:
        # both servers listen on the same port: a second lookup would land on the internal one
        reply, body = connect_then_get(proxy, f"rebind.test:{allowed.port}", "rebind.test")
        assert reply.startswith(b"HTTP/1.1 200") and body.endswith(b"served by allowed")
        assert calls == ["rebind.test"]  # resolved once for the check and the connect
        assert proxy.decisions[-1].address == ALLOWED_IP
        reply, _ = connect_then_get(proxy, f"rebind.test:{internal.port}", "rebind.test")
        assert reply.startswith(b"HTTP/1.1 403") and b"127.0.0.2" in reply
        url = f"http://rebind.test:{internal.port}/secret"
        reply = ask(("127.0.0.1", proxy.port), f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert reply.startswith(b"HTTP/1.1 403")
    assert internal.log == [] and len(calls) == 3


def test_name_check_refuses_before_resolving_and_mixed_answers_block():
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.215.14", "10.0.0.7"]  # one public, one private: refused

    def names(host: str, port: int) -> str | None:
        return "evil.example is on the deny list" if host == "evil.example" else None

    with AllowlistProxy(names, resolver=resolver) as proxy:
        reply = ask(("127.0.0.1", proxy.port), b"CONNECT EVIL.example.:443 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403") and b"deny list" in reply
        assert calls == []
        reply = ask(("127.0.0.1", proxy.port), b"CONNECT mixed.example:443 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 403") and b"10.0.0.7" in reply
        reply = ask(("127.0.0.1", proxy.port), b"GET /relative HTTP/1.1\r\nHost: a\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = ask(("127.0.0.1", proxy.port), b"CONNECT a.example:99999 HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400") and b"out of range" in reply


def test_default_policy_blocks_loopback_spellings_via_the_real_resolver(sites: tuple[Site, Site]):
    allowed, _ = sites
    with AllowlistProxy(lambda h, p: None) as proxy:  # default: global addresses only
        for host in ("127.0.0.1", "localhost", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]"):
            req = f"CONNECT {host}:{allowed.port} HTTP/1.1\r\n\r\n".encode()
            reply = ask(("127.0.0.1", proxy.port), req)
            assert reply.startswith(b"HTTP/1.1 403") and b"loopback" in reply, host
    assert allowed.log == [] or all("CONNECT" not in line for line, _ in allowed.log)


@pytest.mark.parametrize(
    ("ip", "loopback", "private", "blocked"),
    [
        ("8.8.8.8", False, False, False),
        ("127.0.0.5", False, False, True),
        ("127.0.0.5", True, False, False),
        ("10.1.2.3", True, False, True),
        ("10.1.2.3", False, True, False),
        ("169.254.169.254", False, False, True),
        ("::ffff:169.254.169.254", False, False, True),
        ("::1", False, False, True),
        ("0.0.0.0", True, True, True),
        ("fd00::1", False, False, True),
        ("100.64.0.1", False, False, True),
    ],
)
def test_address_ranges(ip: str, loopback: bool, private: bool, blocked: bool):
    reason = address_reason(ip, allow_loopback=loopback, allow_private=private)
    assert (reason is not None) is blocked
    assert (ranges_check(private, loopback)(ip, "h", 1) is not None) is blocked
