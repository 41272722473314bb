"""A small threaded HTTP server for the browser tests: static pages plus a few dynamic routes."""

from __future__ import annotations

import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).parent


class SiteHandler(SimpleHTTPRequestHandler):
    """Serves tests/sites; /slow, /redirect, /submit, /download/* and /files/* are dynamic."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, directory=str(ROOT), **kwargs)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.log.append(f"GET {self.path}")  # type: ignore[attr-defined]
        if url.path == "/slow.html":
            time.sleep(float(query.get("delay", ["3"])[0]))
            self._send(
                b"<html><head><title>Slow</title></head><body><h1>Finally</h1></body></html>"
            )
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path.startswith("/download/"):
            name = url.path.rsplit("/", 1)[-1]
            if name == "big.bin":
                body = b"\x00" * 300_000
            else:
                body = b"item,price\nBlue Widget,4.25\nRed Widget,3.10\n"
            self._send(
                body,
                "application/octet-stream",
                Content_Disposition=f'attachment; filename="{name}"',
            )
        elif url.path.startswith("/files/"):
            path = ROOT / "injection" / url.path.rsplit("/", 1)[-1]
            self._send(
                path.read_bytes(),
                "text/plain; charset=utf-8",
                Content_Disposition=f'attachment; filename="{path.name}"',
            )
        else:
            super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        self.server.posts.append((self.headers.get("Host", ""), self.path, body))  # type: ignore[attr-defined]
        fields = {k: v[0] for k, v in parse_qs(body).items()}
        items = "".join(f"<li>{k}: {v}</li>" for k, v in sorted(fields.items()))
        page = f"<html><head><title>Received</title></head><body><h1>Thanks</h1><ul>{items}</ul></body></html>"
        self._send(page.encode())


class SiteServer:
    """The test sites on 127.0.0.1 and, on the same port, 127.0.0.2 (a second 'domain')."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.posts: list[tuple[str, str, str]] = []
        self.servers: list[ThreadingHTTPServer] = []
        first = self._serve(("127.0.0.1", 0))
        self.port = first.server_address[1]
        try:
            self._serve(("127.0.0.2", self.port))
        except OSError:
            pass  # 127.0.0.2 unavailable: tests that need it skip
        self.url = f"http://127.0.0.1:{self.port}"
        self.other = f"http://127.0.0.2:{self.port}"

    def _serve(self, address: tuple[str, int]) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(address, SiteHandler)
        server.daemon_threads = True
        server.log = self.log  # type: ignore[attr-defined]
        server.posts = self.posts  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
