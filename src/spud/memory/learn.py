"""`spud learn`: read a file, folder or URL, chunk it with provenance and store the chunks."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from spud.core.errors import SpudError
from spud.memory.store import MemoryStore
from spud.tools.files import SKIP_DIRS

CHUNK_CHARS = 1200
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".json", ".toml", ".yaml", ".yml", ".csv"}
OFFICE_SUFFIXES = {".pdf", ".docx", ".pptx", ".xlsx", ".xlsm"}
HTML_SUFFIXES = {".html", ".htm"}
MAX_FILE_BYTES = 20_000_000


@dataclass
class Learned:
    """What one source gave: its document id, chunk count, and whether it was new."""

    source: str
    document_id: int
    chunks: int
    new: bool


class _Text(HTMLParser):
    """The visible text of an HTML page, one block per line."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "noscript"):
            self.skip += 1
        self._in_title = tag == "title"
        if tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr", "section"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self.skip:
            self.skip -= 1
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()
        elif not self.skip:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document."""
    parser = _Text()
    parser.feed(html)
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return parser.title, re.sub(r"\n\s*\n+", "\n\n", text).strip()


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs packed into chunks of at most about `size` characters (long ones by sentence)."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= size:
            pieces.append(para)
            continue
        sentences = re.split(r"(?<=[.!?])\s+", para)
        for s in sentences:
            pieces += [s[i : i + size] for i in range(0, len(s), size)]
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= size:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return chunks


def read_file(path: Path) -> str:
    """A file's text: plain text, HTML, or an office document through the office readers."""
    suffix = path.suffix.lower()
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SpudError(f"{path} is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    if suffix in OFFICE_SUFFIXES:
        from spud.tools.office import documents

        if suffix == ".pdf":
            return "\n\n".join(documents.pdf_pages(path))
        if suffix == ".docx":
            return documents.docx_markdown(path)
        if suffix == ".pptx":
            return documents.pptx_markdown(path)
        return documents.xlsx_markdown(path)
    raw = path.read_text(encoding="utf-8", errors="replace")
    return html_text(raw)[1] if suffix in HTML_SUFFIXES else raw


def fetch_url(url: str) -> tuple[str, str]:
    """(title, text) of a web page."""
    import httpx

    try:
        reply = httpx.get(url, timeout=30, follow_redirects=True)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise SpudError(f"cannot fetch {url}: {exc}") from None
    if "html" in reply.headers.get("content-type", "html"):
        return html_text(reply.text)
    return url, reply.text


def sources(target: str) -> list[tuple[str, Path | None]]:
    """The sources a target names: a URL, a file, or the readable files under a folder."""
    if re.match(r"https?://", target):
        return [(target, None)]
    path = Path(target).expanduser()
    if not path.exists():
        raise SpudError(f"nothing to learn at {target}: no such file, folder or URL")
    if path.is_file():
        return [(str(path.resolve()), path)]
    known = TEXT_SUFFIXES | OFFICE_SUFFIXES | HTML_SUFFIXES
    found = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in known
        and not any(part in SKIP_DIRS or part.startswith(".") for part in p.relative_to(path).parts)
    ]
    if not found:
        raise SpudError(f"{path} holds no files Spud can read ({', '.join(sorted(known))})")
    return [(str(p.resolve()), p) for p in found]


def learn_text(
    memories: MemoryStore, user_id: str, org_id: str, text: str, source: str, title: str = ""
) -> Learned:
    """Chunk and store a text; learning the same text twice stores it once."""
    chunks = chunk_text(text)
    if not chunks:
        raise SpudError(f"{source} has no text to learn")
    digest = hashlib.sha256(text.encode()).hexdigest()
    doc_id, new = memories.add_document(
        user_id, org_id, source, title or Path(source).name, digest, chunks
    )
    return Learned(source, doc_id, len(chunks), new)


def learn(memories: MemoryStore, user_id: str, org_id: str, target: str) -> list[Learned]:
    """Learn a file, every readable file in a folder, or a web page."""
    learned = []
    for source, path in sources(target):
        if path is None:
            title, text = fetch_url(source)
        else:
            title, text = path.stem, read_file(path)
        learned.append(learn_text(memories, user_id, org_id, text, source, title))
    return learned
