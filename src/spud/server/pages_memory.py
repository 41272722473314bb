"""The memory page: what Spud knows about me, with its sources; edit, forget, search, learn."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urljoin

import httpx
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from spud.browser_policy import BrowserPolicy
from spud.core.errors import SpudError
from spud.server import auth
from spud.server.web import _same_site, error_page, render, status_of
from spud.service.errors import Forbidden
from spud.service.users import Principal

router = APIRouter(include_in_schema=False)
SECTIONS = [
    ("fact", "Facts"),
    ("preference", "Preferences"),
    ("skill", "Skills"),
    ("episode", "Episodes"),
]
KINDS = {"fact", "preference", "episode", "skill", "chunk", "selftest"}
MAX_UPLOAD = 3_000_000
REDIRECTS = 5


def _memory_page(
    request: Request,
    who: Principal,
    svc: Any,
    q: str = "",
    kind: str = "",
    status: int = 200,
    **context: Any,
) -> Response:
    mem = svc.sessions.memory
    searched = q.strip() and mem.memories.count(who.user_id, who.org_id)  # else no model load
    hits = mem.recall(who.user_id, who.org_id, q, k=10) if searched else []
    if kind:
        sections = [(kind, kind.capitalize() + "s", mem.list(who.user_id, who.org_id, kind))]
    else:
        sections = [(k, t, mem.list(who.user_id, who.org_id, k)) for k, t in SECTIONS]
    return render(
        request,
        "memory.html",
        who,
        status,
        page="memory",
        q=q,
        kind=kind,
        kinds=sorted(KINDS),
        hits=hits,
        sections=sections,
        documents=list(reversed(mem.documents(who.user_id, org_id=who.org_id))),
        sleeps=mem.sleep_reports(who.user_id, who.org_id, 10),
        **context,
    )


@router.get("/memory")
def memory(
    request: Request,
    who: auth.PageUser,
    svc: auth.Svc,
    q: str = Query("", max_length=500),
    kind: str = Query("", max_length=20),
    forgot: str = Query("", max_length=500, pattern=r"^[m0-9, ]*$"),
) -> Response:
    """What Spud remembers for me: facts, preferences, skills, documents; the last sleeps."""
    notice = f"Forgot {forgot}." if forgot else ""
    return _memory_page(request, who, svc, q, kind if kind in KINDS else "", notice=notice)


def _writer(request: Request, who: Principal) -> Response | None:
    """An error page unless this form may change memories (same site, not a viewer)."""
    if not _same_site(request):
        return error_page(request, who, Forbidden("this form must be sent from Spud's own pages"))
    if not who.can_write:
        return error_page(request, who, Forbidden(f"{who.username} is a viewer: read only"))
    return None


@router.post("/memory/{memory_id}/edit")
def edit(
    request: Request,
    memory_id: int,
    who: auth.FormUser,
    svc: auth.Svc,
    text: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """Change what a memory says."""
    if refused := _writer(request, who):
        return refused
    try:
        if not text.strip():
            raise SpudError("a memory cannot be empty: forget it instead")
        svc.sessions.memory.edit(who.user_id, who.org_id, memory_id, text.strip())
    except SpudError as exc:
        return error_page(request, who, exc)
    return RedirectResponse(f"/memory#m{memory_id}", 303)


@router.post("/memory/{memory_id}/forget")
def forget(request: Request, memory_id: int, who: auth.FormUser, svc: auth.Svc) -> Response:
    """Forget a memory and the versions it replaced; the bytes are wiped from the database."""
    if refused := _writer(request, who):
        return refused
    try:
        gone = svc.sessions.memory.delete(who.user_id, who.org_id, memory_id)
    except SpudError as exc:
        return error_page(request, who, exc)
    return RedirectResponse(f"/memory?forgot={quote(', '.join(f'm{i}' for i in gone))}", 303)


def fetch_page(url: str, policy: BrowserPolicy | None = None) -> tuple[str, str]:
    """(content type, text) of a public web page; every redirect is checked like the first
    address, so a page cannot lead the server to a private or loopback one."""
    policy = policy or BrowserPolicy()
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        for _ in range(REDIRECTS + 1):
            if problem := policy.check(url):
                raise SpudError(f"cannot learn {url}: {problem}")
            try:
                reply = client.get(url)
            except httpx.HTTPError as exc:
                raise SpudError(f"cannot fetch {url}: {exc}") from None
            if reply.is_redirect and "location" in reply.headers:
                url = urljoin(url, reply.headers["location"])
                continue
            if reply.status_code >= 400:
                raise SpudError(f"cannot fetch {url}: HTTP {reply.status_code}")
            return reply.headers.get("content-type", "text/html"), reply.text
    raise SpudError(f"cannot fetch {url}: more than {REDIRECTS} redirects")


def read_upload(upload: UploadFile, limit: int = MAX_UPLOAD) -> bytes:
    """An uploaded file's bytes; a clear error when it is over the limit."""
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        size = f"{limit / 1_000_000:g} MB"
        raise SpudError(f"{upload.filename} is over {size}: nothing of it was kept")
    return data


def learn_upload(svc: Any, who: Principal, filename: str, data: bytes) -> Any:
    """Learn an uploaded file as `spud learn` reads a file; a clear error if it cannot be read."""
    from spud.memory.learn import HTML_SUFFIXES, OFFICE_SUFFIXES, TEXT_SUFFIXES, read_file

    name = Path(filename or "upload.txt").name or "upload.txt"
    known = TEXT_SUFFIXES | OFFICE_SUFFIXES | HTML_SUFFIXES
    if Path(name).suffix.lower() not in known and not _is_text(data):
        raise SpudError(
            f"cannot learn {name}: it is neither text nor a document Spud reads "
            f"({', '.join(sorted(known))})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            text = read_file(path)  # pdf, docx, pptx, xlsx, html or text, as `spud learn` reads it
        except SpudError:
            raise
        except Exception as exc:  # a damaged document: the parser's own words
            raise SpudError(f"cannot read {name}: {type(exc).__name__}: {exc}") from None
    return svc.sessions.memory.learn_text(who.user_id, who.org_id, text, f"upload:{name}")


def _is_text(data: bytes) -> bool:
    try:
        return "\x00" not in data.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _learn_url(svc: Any, who: Principal, url: str) -> Any:
    from spud.memory.learn import html_text

    kind, body = fetch_page(url)
    text = html_text(body)[1] if "html" in kind else body
    return svc.sessions.memory.learn_text(who.user_id, who.org_id, text, url)


@router.post("/memory/learn")
def learn(
    request: Request,
    who: auth.FormUser,
    svc: auth.Svc,
    url: Annotated[str, Form(max_length=2000)] = "",
    upload: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Learn an uploaded document or a web page (chunked, each chunk citing its source)."""
    if refused := _writer(request, who):
        return refused
    try:
        if upload is not None and upload.filename:
            learned = learn_upload(svc, who, upload.filename, read_upload(upload))
        elif url.strip():
            learned = _learn_url(svc, who, url.strip())
        else:
            raise SpudError("choose a file or give a web address to learn")
    except SpudError as exc:
        return _memory_page(request, who, svc, status=status_of(exc), error=str(exc), url=url)
    state = "Learned" if learned.new else "Already knew"
    notice = f"{state} {learned.source} ({learned.chunks} chunks)."
    return _memory_page(request, who, svc, notice=notice)
