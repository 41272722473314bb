"""Document tools: docx, pptx, pdf, csv and markdown read as markdown; docx and pptx written."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from spud.core.messages import ToolResult
from spud.core.protocols import Tool
from spud.tools.files import WorkspaceTool
from spud.tools.office.recalc import recalculate
from spud.tools.office.workbook import (
    MAX_EDIT_CELLS,
    OfficeError,
    check_office_file,
    load_workbook,
    read_window,
    workbook_size,
)

CHARS_PER_TOKEN = 4
DEFAULT_TOKENS = 2000
PDF_MAX_PAGES = 2000


def _error(message: str) -> ToolResult:
    return ToolResult(output=message, ok=False)


def _md_table(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    cells = [
        [str("" if v is None else v).replace("|", "/").replace("\n", " ") for v in r] for r in rows
    ]
    cells = [r + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


# -- reading ---------------------------------------------------------------------------------


def docx_markdown(path: Path) -> str:
    """Headings, paragraphs, lists, tables and comments of a .docx, in document order."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_office_file(path, (".docx",))
    doc = _open(docx.Document, path)
    out: list[str] = []
    for block in doc.iter_inner_content():
        if isinstance(block, Paragraph):
            text, style = block.text.strip(), (block.style.name if block.style else "") or ""
            if 'w:br w:type="page"' in block._p.xml:
                out.append("---")
            if not text:
                continue
            if style.startswith("Heading") and style[-1:].isdigit():
                out.append("#" * int(style[-1]) + " " + text)
            elif style == "Title":
                out.append("# " + text)
            elif "List Number" in style:
                out.append("1. " + text)
            elif "List" in style:
                out.append("- " + text)
            else:
                out.append(text)
        elif isinstance(block, Table):
            out.append(_md_table([[c.text for c in row.cells] for row in block.rows]))
    comments = getattr(doc, "comments", None)
    if comments is not None:
        notes = [f"> comment ({c.author}): {c.text}" for c in comments]
        if notes:
            out += ["## Comments", *notes]
    return "\n\n".join(out)


def pptx_markdown(path: Path) -> str:
    """Each slide's title, text, tables and speaker notes."""
    from pptx import Presentation

    check_office_file(path, (".pptx",))
    prs = _open(Presentation, path)
    out: list[str] = []
    for n, slide in enumerate(prs.slides, 1):
        title = slide.shapes.title.text if slide.shapes.title is not None else ""
        out.append(f"## Slide {n}: {title}".rstrip(": "))
        for shape in slide.shapes:
            if shape == slide.shapes.title:
                continue
            if shape.has_text_frame:
                for p in shape.text_frame.paragraphs:
                    if p.text.strip():
                        out.append("  " * p.level + "- " + p.text.strip())
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [[c.text for c in row.cells] for row in shape.table.rows]
                out.append(_md_table(rows))
            if shape.shape_type == 13:  # picture
                out.append(f"[image {shape.name}]")
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame.text.strip():
            out.append("Notes: " + slide.notes_slide.notes_text_frame.text.strip())
    return "\n\n".join(out)


def _pdf_reader(path: Path) -> Any:
    """A pypdf reader, with clear errors for missing, encrypted or corrupt files."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not path.is_file():
        raise OfficeError(f"no such file: {path.name}")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise OfficeError(f"{path.name} is password-protected; remove the password first")
        len(reader.pages)
    except (PyPdfError, ValueError, OSError) as exc:
        raise OfficeError(f"{path.name} is corrupt or not a PDF: {exc}") from None
    return reader


def pdf_pages(path: Path, first: int = 1, last: int | None = None) -> list[str]:
    """Text (and tables as markdown) of PDF pages first..last (1-based)."""
    import pdfplumber

    total = len(_pdf_reader(path).pages)
    last = min(last or total, total)
    pages: list[str] = []
    with pdfplumber.open(path) as pdf:
        for i in range(first - 1, last):
            page = pdf.pages[i]
            text = page.extract_text() or ""
            tables = [_md_table(t) for t in page.extract_tables() if t]
            pages.append("\n\n".join([text, *tables]).strip())
    return pages


def pdf_page_count(path: Path) -> int:
    """How many pages a PDF has."""
    return len(_pdf_reader(path).pages)


def xlsx_markdown(path: Path) -> str:
    """Every sheet's first window, formulas with computed values."""
    big = workbook_size(path) > MAX_EDIT_CELLS
    wb = load_workbook(path, read_only=big)
    recalc = None if big else recalculate(wb)
    out = []
    for ws in wb.worksheets:
        bounds = (1, 1, min(ws.max_column or 1, 15), min(ws.max_row or 1, 40))
        out.append(f"## Sheet {ws.title} ({ws.max_row} rows)\n" + read_window(ws, bounds, recalc))
    return "\n\n".join(out)


def csv_markdown(path: Path, max_rows: int = 200) -> str:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = [row for _, row in zip(range(max_rows + 1), csv.reader(fh), strict=False)]
    return _md_table(rows)


def _open(factory: Any, path: Path) -> Any:
    try:
        return factory(str(path))
    except Exception as exc:  # the libraries raise many kinds for a bad package
        raise OfficeError(f"{path.name} is corrupt or unreadable: {type(exc).__name__}") from None


def to_markdown(path: Path, max_tokens: int = DEFAULT_TOKENS, page: int = 1) -> str:
    """Any supported file as markdown cut to a token budget, with a note on how to go on."""
    suffix = path.suffix.lower()
    budget = max_tokens * CHARS_PER_TOKEN
    if suffix == ".pdf":
        total = pdf_page_count(path)
        parts, used, n = [], 0, page
        while n <= total:
            text = f"## Page {n}\n" + pdf_pages(path, n, n)[0]
            if parts and used + len(text) > budget:
                break
            parts.append(text)
            used += len(text)
            n += 1
        body = "\n\n".join(parts)
        if n <= total:
            body = body[:budget] + f"\n[pages {page}-{n - 1} of {total}; continue with page={n}]"
        return body
    if suffix == ".docx":
        text = docx_markdown(path)
    elif suffix == ".pptx":
        text = pptx_markdown(path)
    elif suffix in (".xlsx", ".xlsm"):
        text = xlsx_markdown(path)
    elif suffix == ".csv":
        text = csv_markdown(path)
    elif suffix in (".md", ".txt"):
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        raise OfficeError(f"cannot convert {suffix or 'this file'} to markdown")
    start = (page - 1) * budget
    chunk = text[start : start + budget]
    if start + budget < len(text):
        chunk += f"\n[cut at {budget} characters of {len(text)}; continue with page={page + 1}]"
    return chunk


def document_outline(path: Path) -> tuple[str, list[str]]:
    """A text outline of a document and the problems found (empty sections, blank pages)."""
    suffix = path.suffix.lower()
    problems: list[str] = []
    lines: list[str] = []
    if suffix == ".docx":
        md = docx_markdown(path).split("\n\n")
        heads = [i for i, b in enumerate(md) if b.startswith("#")]
        for n, i in enumerate(heads):
            lines.append(md[i])
            nxt = heads[n + 1] if n + 1 < len(heads) else len(md)
            deeper = nxt < len(md) and md[nxt].split(" ")[0].count("#") > md[i].split(" ")[0].count(
                "#"
            )
            if nxt == i + 1 and not deeper:
                problems.append(f"section {md[i].lstrip('# ')!r} is empty")
        if not any(b.strip() for b in md):
            problems.append("the document is empty")
    elif suffix == ".pptx":
        from pptx import Presentation

        check_office_file(path, (".pptx",))
        prs = _open(Presentation, path)
        for n, slide in enumerate(prs.slides, 1):
            title = slide.shapes.title.text if slide.shapes.title is not None else ""
            lines.append(f"slide {n}: {title}")
            if not title.strip():
                problems.append(f"slide {n} has no title")
            for ph in slide.placeholders:
                if ph.has_text_frame and not ph.text_frame.text.strip():
                    problems.append(f"slide {n}: placeholder {ph.name!r} is empty")
        if not lines:
            problems.append("the presentation has no slides")
    elif suffix == ".pdf":
        pages = pdf_pages(path, 1, PDF_MAX_PAGES)
        for n, text in enumerate(pages, 1):
            lines.append(f"page {n}: {(text.splitlines() or [''])[0][:80]}")
            if not text.strip():
                problems.append(f"page {n} has no text")
    elif suffix in (".csv", ".md"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            problems.append("the file is empty")
        lines = [x for x in text.splitlines() if x.startswith("#")] or text.splitlines()[:3]
    return "\n".join(lines), problems


# -- tools -----------------------------------------------------------------------------------


class ReadDocument(WorkspaceTool):
    """doc_read: any office file or PDF as markdown, one page of the budget at a time."""

    name = "doc_read"
    risk = "read"
    description = (
        "Read a .docx, .pptx, .pdf, .xlsx, .csv or .md file as markdown. Long files come in "
        "parts: call again with page=2, 3, ... (for PDFs, page is the PDF page to start at)."
    )

    class Args(BaseModel):
        path: str = Field(description="File path relative to the workspace.")
        page: int = Field(1, ge=1, description="Which part (or PDF page) to start at.")

    def __init__(self, workspace: Path, max_tokens: int = DEFAULT_TOKENS) -> None:
        super().__init__(workspace)
        self.max_tokens = max_tokens

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        if not target.is_file():
            return _error(f"no such file: {args.path}")
        try:
            text = to_markdown(target, self.max_tokens, args.page)
        except OfficeError as exc:
            return _error(str(exc))
        return ToolResult(
            output=text or "(no text)", untrusted=True, data={"path": self.rel(target)}
        )


class Block(BaseModel):
    """One piece of a document, in order."""

    kind: Literal["heading", "paragraph", "bullet", "numbered", "table", "image", "page_break"]
    text: str = Field("", description="Text (heading, paragraph, list item) or image path.")
    level: int = Field(1, ge=1, le=6, description="Heading level.")
    style: str | None = Field(None, description="Paragraph style name, e.g. 'Quote'.")
    rows: list[list[str]] = Field(default_factory=list, description="Table rows, header first.")


class WriteDocx(WorkspaceTool):
    """docx_write: create a .docx from blocks, or append them to an existing one."""

    name = "docx_write"
    risk = "write"
    description = (
        "Write a Word .docx: a list of blocks (heading, paragraph, bullet, numbered, table, "
        "image, page_break). With append=true the blocks go at the end of an existing file."
    )

    class Args(BaseModel):
        path: str = Field(description="Document path relative to the workspace (.docx).")
        blocks: list[Block] = Field(description="The content, in order.")
        append: bool = Field(False, description="Add to the end of an existing document.")

    def run(self, args: Args) -> ToolResult:
        import docx
        from docx.enum.text import WD_BREAK
        from docx.shared import Inches

        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        if target.suffix.lower() != ".docx":
            return _error("docx_write writes .docx files; give a path ending in .docx")
        try:
            if args.append and target.exists():
                check_office_file(target, (".docx",))
                doc = _open(docx.Document, target)
            else:
                doc = docx.Document()
        except OfficeError as exc:
            return _error(str(exc))
        for b in args.blocks:
            if b.kind == "heading":
                doc.add_heading(b.text, level=b.level)
            elif b.kind in ("paragraph", "bullet", "numbered"):
                style = {"bullet": "List Bullet", "numbered": "List Number"}.get(b.kind, b.style)
                try:
                    doc.add_paragraph(b.text, style=style)
                except KeyError:
                    return _error(f"unknown paragraph style {b.style!r}; nothing saved")
            elif b.kind == "table":
                if not b.rows:
                    return _error("a table block needs rows; nothing saved")
                table = doc.add_table(rows=len(b.rows), cols=max(len(r) for r in b.rows))
                table.style = "Table Grid"
                for i, row in enumerate(b.rows):
                    for j, value in enumerate(row):
                        table.cell(i, j).text = str(value)
            elif b.kind == "image":
                image = self.resolve(b.text)
                if isinstance(image, ToolResult) or not image.is_file():
                    return _error(f"image not found: {b.text!r}; nothing saved")
                doc.add_picture(str(image), width=Inches(5))
            elif b.kind == "page_break":
                doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            doc.save(str(target))
        except OSError as exc:
            return _error(f"cannot write {args.path}: {exc.strerror}")
        rel = self.rel(target)
        return ToolResult(
            output=f"wrote {len(args.blocks)} blocks to {rel}", data={"path": rel, "written": True}
        )


class Slide(BaseModel):
    """One slide: a title, bullets, an optional table or image, and speaker notes."""

    title: str = Field(description="Slide title.")
    bullets: list[str] = Field(default_factory=list, description="Bullet points.")
    table: list[list[str]] = Field(default_factory=list, description="Table rows, header first.")
    image: str | None = Field(None, description="Image path relative to the workspace.")
    notes: str = Field("", description="Speaker notes.")


class WritePptx(WorkspaceTool):
    """pptx_write: create a presentation, or append slides to one."""

    name = "pptx_write"
    risk = "write"
    description = (
        "Write a PowerPoint .pptx: a list of slides, each with a title, bullets, an optional "
        "table or image and speaker notes. With append=true the slides are added at the end."
    )

    class Args(BaseModel):
        path: str = Field(description="Presentation path relative to the workspace (.pptx).")
        slides: list[Slide] = Field(min_length=1, description="The slides, in order.")
        append: bool = Field(False, description="Add to the end of an existing presentation.")

    def run(self, args: Args) -> ToolResult:
        from pptx import Presentation
        from pptx.util import Inches

        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        if target.suffix.lower() != ".pptx":
            return _error("pptx_write writes .pptx files; give a path ending in .pptx")
        try:
            if args.append and target.exists():
                check_office_file(target, (".pptx",))
                prs = _open(Presentation, target)
            else:
                prs = Presentation()
        except OfficeError as exc:
            return _error(str(exc))
        for s in args.slides:
            plain = not s.bullets
            slide = prs.slides.add_slide(prs.slide_layouts[5 if plain else 1])
            slide.shapes.title.text = s.title
            if s.bullets:
                body = slide.placeholders[1].text_frame
                body.text = s.bullets[0]
                for text in s.bullets[1:]:
                    body.add_paragraph().text = text
            top = Inches(4.5 if s.bullets else 1.8)
            if s.table:
                cols = max(len(r) for r in s.table)
                shape = slide.shapes.add_table(
                    len(s.table), cols, Inches(0.5), top, Inches(9), Inches(0.4 * len(s.table))
                )
                for i, row in enumerate(s.table):
                    for j, value in enumerate(row):
                        shape.table.cell(i, j).text = str(value)
            if s.image:
                image = self.resolve(s.image)
                if isinstance(image, ToolResult) or not image.is_file():
                    return _error(f"image not found: {s.image!r}; nothing saved")
                slide.shapes.add_picture(str(image), Inches(1), top, height=Inches(2.5))
            if s.notes:
                slide.notes_slide.notes_text_frame.text = s.notes
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            prs.save(str(target))
        except OSError as exc:
            return _error(f"cannot write {args.path}: {exc.strerror}")
        rel = self.rel(target)
        return ToolResult(
            output=f"wrote {len(args.slides)} slides to {rel} ({len(prs.slides)} in all)",
            data={"path": rel, "written": True},
        )


class WriteCsv(WorkspaceTool):
    """csv_write: rows to a CSV file (quoted properly)."""

    name = "csv_write"
    risk = "write"
    description = "Write rows (header first) to a .csv file, quoting values as needed."

    class Args(BaseModel):
        path: str = Field(description="CSV path relative to the workspace.")
        rows: list[list[str | int | float | None]] = Field(min_length=1, description="Rows.")

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(args.rows)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(buf.getvalue(), encoding="utf-8")
        except OSError as exc:
            return _error(f"cannot write {args.path}: {exc.strerror}")
        rel = self.rel(target)
        return ToolResult(
            output=f"wrote {len(args.rows)} rows to {rel}", data={"path": rel, "written": True}
        )


def document_tools(workspace: Path) -> list[Tool]:
    """The document tools, bound to one workspace."""
    return [
        ReadDocument(workspace),
        WriteDocx(workspace),
        WritePptx(workspace),
        WriteCsv(workspace),
    ]
