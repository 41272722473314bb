"""Document tools on real files: docx, pptx, pdf, csv written, reopened and read as markdown."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from pptx import Presentation

from spud.tools.office.documents import ReadDocument, WriteCsv, WriteDocx, WritePptx, to_markdown


def _run(tool_cls, ws: Path, **args):
    tool = tool_cls(ws)
    return tool.run(tool.Args(**args))


def _pdf(path: Path, pages: int) -> Path:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(0, 10, f"Page {n} heading")
        pdf.ln()
        pdf.multi_cell(0, 8, f"Body text of page {n}. " * 20)
    pdf.output(str(path))
    return path


@pytest.fixture
def image(workspace: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(workspace / "dot.png")
    return workspace / "dot.png"


def test_docx_write_then_read(workspace: Path, image: Path):
    blocks = [
        {"kind": "heading", "text": "Q3 memo", "level": 1},
        {"kind": "paragraph", "text": "Margins rose."},
        {"kind": "paragraph", "text": "A quote.", "style": "Quote"},
        {"kind": "bullet", "text": "North up"},
        {"kind": "numbered", "text": "First step"},
        {"kind": "table", "rows": [["Region", "Margin"], ["North", "12%"]]},
        {"kind": "image", "text": "dot.png"},
        {"kind": "page_break"},
        {"kind": "heading", "text": "Next", "level": 2},
        {"kind": "paragraph", "text": "More."},
    ]
    res = _run(WriteDocx, workspace, path="memo.docx", blocks=blocks)
    assert res.ok, res.output
    doc = docx.Document(str(workspace / "memo.docx"))
    styles = [(p.style.name, p.text) for p in doc.paragraphs if p.text]
    assert ("Heading 1", "Q3 memo") in styles and ("Quote", "A quote.") in styles
    assert ("List Bullet", "North up") in styles and ("List Number", "First step") in styles
    assert doc.tables[0].cell(1, 1).text == "12%" and len(doc.inline_shapes) == 1
    md = _run(ReadDocument, workspace, path="memo.docx").output
    assert "# Q3 memo" in md and "## Next" in md and "- North up" in md
    assert "| North | 12% |" in md and "---" in md
    more = _run(
        WriteDocx,
        workspace,
        path="memo.docx",
        append=True,
        blocks=[{"kind": "paragraph", "text": "Appended."}],
    )
    assert (
        more.ok and docx.Document(str(workspace / "memo.docx")).paragraphs[-1].text == "Appended."
    )


def test_docx_comments_are_read(workspace: Path):
    doc = docx.Document()
    p = doc.add_paragraph("Check this number.")
    doc.add_comment(p.runs, text="Is it right?", author="Ana")
    doc.save(str(workspace / "c.docx"))
    assert "comment (Ana): Is it right?" in to_markdown(workspace / "c.docx")


def test_pptx_create_and_append(workspace: Path, image: Path):
    slides = [
        {"title": "Results", "bullets": ["Revenue up", "Costs flat"], "notes": "Say thanks"},
        {"title": "Table", "table": [["A", "B"], ["1", "2"]], "image": "dot.png"},
    ]
    assert _run(WritePptx, workspace, path="deck.pptx", slides=slides).ok
    res = _run(WritePptx, workspace, path="deck.pptx", append=True, slides=[{"title": "End"}])
    assert res.ok and "3 in all" in res.output
    prs = Presentation(str(workspace / "deck.pptx"))
    assert [s.shapes.title.text for s in prs.slides] == ["Results", "Table", "End"]
    assert prs.slides[0].notes_slide.notes_text_frame.text == "Say thanks"
    md = to_markdown(workspace / "deck.pptx")
    assert "## Slide 1: Results" in md and "- Costs flat" in md and "| 1 | 2 |" in md
    assert "Notes: Say thanks" in md


def test_pdf_is_read_per_page_within_budget(workspace: Path):
    _pdf(workspace / "r.pdf", 6)
    tool = ReadDocument(workspace, max_tokens=300)
    res = tool.run(tool.Args(path="r.pdf"))
    assert res.ok and res.untrusted and "## Page 1" in res.output
    assert "continue with page=" in res.output and len(res.output) < 300 * 4 + 200
    res = tool.run(tool.Args(path="r.pdf", page=6))
    assert "Page 6 heading" in res.output and "continue" not in res.output


def test_csv_round_trip_and_bad_files(workspace: Path):
    assert _run(WriteCsv, workspace, path="t.csv", rows=[["a", "b"], ["x,y", 2]]).ok
    assert (workspace / "t.csv").read_text() == 'a,b\n"x,y",2\n'
    assert "| x,y | 2 |" in to_markdown(workspace / "t.csv")
    (workspace / "bad.docx").write_bytes(b"not a zip")
    (workspace / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    res = _run(ReadDocument, workspace, path="bad.docx")
    assert not res.ok and "corrupt" in res.output
    res = _run(ReadDocument, workspace, path="bad.pdf")
    assert not res.ok and ("corrupt" in res.output or "no text" in res.output)
