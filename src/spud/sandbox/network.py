"""Network for sandboxed commands: only through Spud's allowlist proxy, never the host's stack.

The command keeps its own empty network namespace. The proxy's unix socket is bound into it,
and a small forwarder started in front of the command listens on 127.0.0.1:PROXY_PORT inside
and passes each connection to that socket; HTTP(S)_PROXY point tools (pip, curl, git) at it.
"""

from __future__ import annotations

import fnmatch
import threading

from spud.sandbox.proxy import AllowlistProxy, ranges_check

PROXY_PORT = 3128
SOCKET_PATH = "/run/spud/proxy.sock"
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"

# Runs inside the sandbox as `python3 -S -c FORWARDER command...`: binds first (so the command
# never races it), forks a server, then the original process becomes the command itself.
FORWARDER = f"""
import os, socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", {PROXY_PORT}))
srv.listen(64)
if os.fork() == 0:
    null = os.open(os.devnull, os.O_RDWR)
    for n in (0, 1, 2):
        os.dup2(null, n)
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    def serve(c):
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect({SOCKET_PATH!r})
        except OSError:
            c.close()
            return
        t = threading.Thread(target=pump, args=(u, c), daemon=True)
        t.start()
        pump(c, u)
        t.join()
        c.close()
        u.close()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
srv.close()
os.execvp(sys.argv[1], sys.argv[1:])
"""

_lock = threading.Lock()
_proxies: dict[tuple[str, ...], AllowlistProxy] = {}


def host_check(allowed: tuple[str, ...]):  # noqa: ANN201 - a proxy.Check
    """A proxy name check: any host when `allowed` is empty, else hosts matching a glob."""

    def check(host: str, port: int) -> str | None:
        if not allowed or any(fnmatch.fnmatch(host, pattern.lower()) for pattern in allowed):
            return None
        return f"{host} is not in the sandbox's network allowlist"

    return check


def shared_proxy(allowed: tuple[str, ...]) -> AllowlistProxy:
    """One proxy per allowlist for the whole process, started on first use.

    Names pass the allowlist (any public host when it is empty); every resolved address must
    be global, so the host's loopback, private networks and cloud metadata stay unreachable.
    """
    with _lock:
        proxy = _proxies.get(allowed)
        if proxy is None:
            proxy = AllowlistProxy(host_check(allowed), address_check=ranges_check()).start()
            _proxies[allowed] = proxy
        return proxy


def proxy_env() -> dict[str, str]:
    """What tools inside read to find the proxy (both spellings; local addresses go direct)."""
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = env[name.lower()] = PROXY_URL
    env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
    return env
