"""A task's web pages on a loopback port, recording the forms submitted to them (site_request)."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import HTTP
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECEIVED = (
    b"<!doctype html><html><head><title>Received</title></head>"
    b"<body><h1>Thank you</h1><p>Your submission was received.</p></body></html>"
)
MAX_BODY = 1_000_000


def form_fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """The fields of a POST body as a browser sends a form (urlencoded or multipart)."""
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        fields: dict[str, list[str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                value = part.get_filename() or part.get_content()
                fields.setdefault(str(name), []).append(
                    value if isinstance(value, str) else value.decode("utf-8", "replace")
                )
        return fields
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


@contextmanager
def serve(pages: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """Serve pages while a task runs and yield the base URL ('' when there are none).

    Each GET with a query string and each POST is appended to log as JSON
    ({method, path, fields}); a log left by an earlier run of the task is removed first.
    """
    if log is not None:
        log.unlink(missing_ok=True)
    if not pages:
        yield ""
        return
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(method: str, path: str, fields: dict[str, list[str]]) -> None:
        with lock:
            received.append({"method": method, "path": path, "fields": fields})
            if log is not None:
                log.write_text(json.dumps(received, indent=1))

    with tempfile.TemporaryDirectory(prefix="spud-site-") as root:
        for rel, html in pages.items():
            target = Path(root) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(html)

        class Site(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=root, **kwargs)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.query:
                    record("GET", url.path, parse_qs(url.query, keep_blank_values=True))
                super().do_GET()

            def do_POST(self) -> None:  # noqa: N802
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                url = urlsplit(self.path)
                ctype = self.headers.get("Content-Type", "")
                record("POST", url.path, form_fields(ctype, body))
                page = Path(self.translate_path(self.path))  # a page of that name, or a thank-you
                reply = page.read_bytes() if page.is_file() else RECEIVED
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
