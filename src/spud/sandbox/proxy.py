"""An allowlist HTTP proxy that resolves each host once and connects to exactly the checked address.

The browser and sandboxed shell commands (when a policy turns the network on) reach the
network only through this proxy. For every client connection it:

1. reads one request head: ``CONNECT host:port`` (HTTPS, WebSockets, any tunnel) or a plain
   HTTP request with an absolute URI (``GET http://host:port/path HTTP/1.1``);
2. asks ``check(host, port)`` whether the name may be reached (domain allow/deny lists);
3. resolves the host once (``resolver``; an IP literal is not resolved);
4. asks ``address_check(ip, host, port)`` about every resolved address (by default only
   global addresses pass: private, loopback, link-local, multicast and reserved are blocked);
   one blocked address blocks the request;
5. connects to exactly that checked address (no second lookup, so DNS rebinding between the
   check and the connect cannot happen) and pipes bytes both ways until either side closes.

A refused request gets ``403 Forbidden`` with the reason as the body (``502`` when the host
cannot be resolved or reached). A plain HTTP request is forwarded with the request line in
origin form, hop-by-hop headers (``Proxy-*``, ``Connection``, ``Upgrade``, ``Expect``) removed
and ``Connection: close`` added; it carries one request (body by Content-Length) and one
response, then the connection closes, so a client that reuses it for another host cannot reach
the first host that way. Every decision is kept in ``decisions`` (the last 1,000).

Typical use::

    proxy = AllowlistProxy(lambda host, port: None, address_check=ranges_check()).start()
    env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url}   # or bind proxy.unix_path
    ...
    proxy.close()

The proxy listens on TCP ``127.0.0.1:<port>`` (``.port``, ``.url``) and on a unix socket
(``.unix_path``, mode 0666, in a private temporary folder unless a path is given) that can be
bound into a sandbox with no network of its own. Anyone who can reach either socket can use
the proxy; that is the point, and it only ever reaches what the checks allow.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import shutil
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

Check = Callable[[str, int], "str | None"]
"""(host as requested, lower-case and without brackets, port) -> why it is refused, or None."""
AddressCheck = Callable[[str, str, int], "str | None"]
"""(resolved IP address as text, host, port) -> why it is refused, or None."""
Resolver = Callable[[str, int], list[str]]
"""(host, port) -> IP addresses as text; raise OSError or return [] when it does not resolve."""

MAX_HEAD_BYTES = 64 * 1024
# Hop-by-hop headers the proxy drops (it sends its own Connection: close). Without Upgrade,
# plain-HTTP WebSockets need CONNECT, which is what browsers use through a proxy anyway.
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "expect",
    "upgrade",
}
BUFFER = 64 * 1024


@dataclass(frozen=True)
class Decision:
    """What the proxy did with one request: the target, the address used, and any refusal."""

    host: str
    port: int
    address: str | None  # the address connected to (None when refused before connecting)
    reason: str | None  # None: allowed
    status: int = 200  # 403: the policy refused it; 502: it did not resolve or connect

    @property
    def allowed(self) -> bool:
        return self.reason is None


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo), addresses in the order it gives them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        if text not in seen:
            seen.append(text)
    return seen


def address_reason(
    ip: str, host: str = "", *, allow_private: bool = False, allow_loopback: bool = False
) -> str | None:
    """Why the address is refused under the usual ranges rule, or None when it may be reached.

    Loopback (127.0.0.0/8, ::1) passes only with allow_loopback or allow_private; every other
    non-global range (private, link-local, CGNAT, multicast, reserved, unspecified) only with
    allow_private. IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
    """
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    name = f"{host} ({addr})" if host and host != str(addr) else str(addr)
    if addr.is_loopback:
        if allow_loopback or allow_private:
            return None
        return f"{name} is a loopback address, blocked by the network policy"
    if addr.is_unspecified or addr.is_multicast:
        return f"{name} is not a unicast address, blocked by the network policy"
    if not addr.is_global and not allow_private:
        return f"{name} is a private address, blocked by the network policy"
    return None


def ranges_check(allow_private: bool = False, allow_loopback: bool = False) -> AddressCheck:
    """An address_check that applies address_reason with these two switches."""

    def check(ip: str, host: str, port: int) -> str | None:
        return address_reason(ip, host, allow_private=allow_private, allow_loopback=allow_loopback)

    return check


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AllowlistProxy:
    """An HTTP proxy on 127.0.0.1 and a unix socket that only reaches what the checks allow.

    check: called with (host, port) before resolving; return a reason to refuse.
    address_check: called with (ip, host, port) for every resolved address; default
        ranges_check() (global addresses only).
    resolver: (host, port) -> addresses; default system_resolver. Called once per request.
    on_decision: called (from the connection's thread) with every Decision as it is made.
    unix_path: where the unix socket goes; default a new private temporary folder.
    connect_timeout / idle_timeout: seconds to connect upstream / a tunnel may sit silent.
    """

    def __init__(
        self,
        check: Check,
        *,
        address_check: AddressCheck | None = None,
        resolver: Resolver | None = None,
        unix_path: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self.check = check
        self.address_check = address_check or ranges_check()
        self.resolver = resolver or system_resolver
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.on_decision = on_decision
        self._host, self._port = host, port
        self._given_unix = Path(unix_path) if unix_path is not None else None
        self._tmpdir: str | None = None
        self.unix_path: str | None = None
        self.port = 0
        self._listeners: list[socket.socket] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._closed = False

    # lifecycle

    @property
    def url(self) -> str:
        """The proxy's TCP address as a URL, for --proxy-server or HTTP(S)_PROXY."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> AllowlistProxy:
        """Open both sockets and start serving in a background thread; returns self."""
        if self._thread is not None:
            return self
        tcp = socket.create_server((self._host, self._port), backlog=128)
        self.port = tcp.getsockname()[1]
        if self._given_unix is None:
            self._tmpdir = tempfile.mkdtemp(prefix="spud-proxy-")
            path = Path(self._tmpdir) / "proxy.sock"
        else:
            path = self._given_unix
            path.unlink(missing_ok=True)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(path))
        os.chmod(path, 0o666)
        unix.listen(128)
        self.unix_path = str(path)
        self._listeners = [tcp, unix]
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="spud-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening and cut every open connection; safe to call twice."""
        if self._closed or self._thread is None:
            self._closed = True
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for sock in self._listeners:
            sock.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            _close(sock)
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        elif self.unix_path:
            Path(self.unix_path).unlink(missing_ok=True)

    def __enter__(self) -> AllowlistProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self._listeners:
            sel.register(sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._closed:
            for key, _ in sel.select():
                if key.fileobj == self._wake_r:
                    sel.close()
                    return
                try:
                    client, _addr = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                self._track(client)
                threading.Thread(target=self._handle, args=(client,), daemon=True).start()
        sel.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)
        _close(sock)

    # one connection

    def _handle(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(30)
            head, rest = _read_head(client)
            method, host, port, forward, length = _parse_head(head)
            upstream = self._open(host, port)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                self._pipe(client, upstream)
            else:
                self._relay_once(client, upstream, forward + rest[:length], length - len(rest))
        except _Refused as exc:
            _reply(client, exc.status, exc.reason)
        except OSError:
            pass
        finally:
            if upstream is not None:
                self._untrack(upstream)
            self._untrack(client)

    def _relay_once(
        self, client: socket.socket, upstream: socket.socket, first: bytes, body_left: int
    ) -> None:
        """One plain HTTP request and its response, then close: a client that reuses the
        connection for another host must open a new one (and be checked again)."""
        upstream.settimeout(self.idle_timeout)
        client.settimeout(self.idle_timeout)
        upstream.sendall(first)
        while body_left > 0:
            data = client.recv(min(BUFFER, body_left))
            if not data:
                return
            upstream.sendall(data)
            body_left -= len(data)
        try:
            head, rest = _read_head(upstream)
        except _Refused:
            return  # the server closed without an answer: so does the proxy
        client.sendall(_closing_head(head) + rest)
        while data := upstream.recv(BUFFER):
            client.sendall(data)

    def _open(self, host: str, port: int) -> socket.socket:
        """Check the name, resolve it once, check every address, connect to a checked one."""
        reason = self.check(host, port)
        if reason:
            self._refuse(host, port, 403, reason)
        if _is_ip(host):
            addresses = [host]
        else:
            try:
                addresses = list(self.resolver(host, port))
            except (OSError, UnicodeError) as exc:
                self._refuse(host, port, 502, f"could not resolve {host}: {exc}")
            if not addresses:
                self._refuse(host, port, 502, f"could not resolve {host}")
        for ip in addresses:
            if not _is_ip(ip):
                self._refuse(host, port, 502, f"the resolver gave {ip!r}, not an IP address")
            reason = self.address_check(ip, host, port)
            if reason:
                self._refuse(host, port, 403, reason)
        last: OSError | None = None
        for ip in addresses:
            try:
                sock = socket.create_connection((ip, port), timeout=self.connect_timeout)
            except OSError as exc:
                last = exc
                continue
            self._track(sock)
            self._decide(Decision(host, port, ip, None))
            return sock
        self._refuse(host, port, 502, f"could not connect to {host}:{port}: {last}")
        raise AssertionError("unreachable")

    def _refuse(self, host: str, port: int, status: int, reason: str) -> None:
        self._decide(Decision(host, port, None, reason, status))
        raise _Refused(status, reason)

    def _decide(self, decision: Decision) -> None:
        self.decisions.append(decision)
        if self.on_decision is not None:
            self.on_decision(decision)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        a.settimeout(None)
        b.settimeout(None)
        peer = {a: b, b: a}
        open_ = {a, b}
        sel = selectors.DefaultSelector()
        for sock in open_:
            sel.register(sock, selectors.EVENT_READ)
        try:
            while open_:
                events = sel.select(timeout=self.idle_timeout)
                if not events:
                    return  # idle too long
                for key, _ in events:
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(BUFFER)
                    except OSError:
                        data = b""
                    if data:
                        try:
                            peer[src].sendall(data)
                        except OSError:
                            return
                        continue
                    # one side finished sending: pass the half-close on, stop when both have
                    sel.unregister(src)
                    open_.discard(src)
                    try:
                        peer[src].shutdown(socket.SHUT_WR)
                    except OSError:
                        return
        finally:
            sel.close()


# -- parsing ----------------------------------------------------------------------------------


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (through the blank line) and any bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(BUFFER)
        if not chunk:
            raise _Refused(400, "the connection closed before a complete request head")
        data += chunk
        if len(data) > MAX_HEAD_BYTES and b"\r\n\r\n" not in data[:MAX_HEAD_BYTES]:
            raise _Refused(431, "the request head is too large")
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def _parse_head(head: bytes) -> tuple[str, str, int, bytes, int]:
    """(method, host, port, head to forward, body length) from a proxy request head."""
    try:
        text = head.decode("latin-1")
        request_line, *header_lines = text[:-4].split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise _Refused(400, "not an HTTP request") from None
    if method == "CONNECT":
        host, port = _split_host_port(target, None)
        return method, host, port, b"", 0
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.netloc:
        raise _Refused(
            400, f"a proxy request needs an absolute http:// URI or CONNECT, not {target!r}"
        )
    host, port = _split_host_port(parts.netloc.rsplit("@", 1)[-1], 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    length = 0
    kept = []
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transfer-encoding":
            raise _Refused(411, "send request bodies with a Content-Length through this proxy")
        if name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise _Refused(400, f"not a valid Content-Length: {value.strip()!r}") from None
            if length < 0:
                raise _Refused(400, "a negative Content-Length")
        if name not in HOP_HEADERS:
            kept.append(line)
    lines = [f"{method} {path} {version}", *kept, "Connection: close"]
    return method, host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), length


def _closing_head(head: bytes) -> bytes:
    """A response head told to close the connection (so it is not reused for another host)."""
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.partition(b":")[0].strip().lower().decode("latin-1") not in HOP_HEADERS
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _split_host_port(text: str, default: int | None) -> tuple[str, int]:
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    host = host.lower().rstrip(".")
    if not port_text and default is not None:
        return _valid_host(host), default
    try:
        port = int(port_text)
    except ValueError:
        raise _Refused(400, f"no valid port in {text!r}") from None
    if not 0 < port < 65536:
        raise _Refused(400, f"port {port} is out of range")
    return _valid_host(host), port


def _valid_host(host: str) -> str:
    if not host or any(c in host for c in " /\\@\x00\r\n"):
        raise _Refused(400, f"not a valid host: {host!r}")
    return host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _reply(sock: socket.socket, status: int, reason: str) -> None:
    phrases = {400: "Bad Request", 403: "Forbidden", 411: "Length Required", 431: "Too Large"}
    phrase = phrases.get(status, "Bad Gateway")
    lead = "Blocked by Spud's network policy" if status == 403 else "Spud's proxy refused"
    body = f"{lead}: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        sock.sendall(head.encode() + body)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
