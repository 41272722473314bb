"""verify: deliverables reopened from disk, recalculated, checked and outlined."""

from __future__ import annotations

from pathlib import Path

import docx
import openpyxl
from openpyxl.workbook.defined_name import DefinedName

from spud.core.messages import Message
from spud.tools.office.sheets import SheetWrite
from spud.tools.office.verify import VerifyFile, produced_files, verify_file, verify_outputs


def test_workbook_with_errors_and_broken_names_fails(workspace: Path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws["A1"], ws["A2"], ws["A3"] = 4, 0, "=A1/A2"
    ws["B1"] = "=Missing!A1"
    wb.defined_names["gone"] = DefinedName("gone", attr_text="Data!#REF!")
    wb.create_sheet("Empty")
    wb.save(workspace / "bad.xlsx")
    v = verify_file(workspace / "bad.xlsx")
    assert not v.ok
    text = "\n".join(v.problems)
    assert "Data!A3: #DIV/0!" in text and "Data!B1: #REF!" in text
    assert "named range gone is broken" in text and "sheet 'Empty' is empty" in text


def test_verify_tool_confirms_a_written_total(workspace: Path):
    wb = openpyxl.Workbook()
    for row in [["Item", "Amount"], ["a", 1.5], ["b", 2.5], ["c", 6]]:
        wb.active.append(row)
    wb.save(workspace / "s.xlsx")
    tool = SheetWrite(workspace)
    res = tool.run(tool.Args(path="s.xlsx", cells={"B5": "=SUM(B2:B4)"}))
    verify = VerifyFile(workspace)
    out = verify.run(verify.Args(path="s.xlsx"))
    assert out.ok and "verify s.xlsx (xlsx): OK" in out.output
    messages = [Message(role="tool", name="sheet_write", meta={"ok": True, **res.data})]
    assert produced_files(messages) == ["s.xlsx"]
    [checked] = verify_outputs(workspace, messages)
    assert checked.ok


def test_document_outline_and_empty_sections(workspace: Path):
    doc = docx.Document()
    doc.add_heading("Summary", 1)
    doc.add_heading("Risks", 1)
    doc.add_paragraph("Few.")
    doc.add_heading("Plan", 1)
    doc.save(str(workspace / "m.docx"))
    v = verify_file(workspace / "m.docx")
    assert not v.ok and v.problems == ["section 'Summary' is empty", "section 'Plan' is empty"]
    assert v.outline.splitlines() == ["# Summary", "# Risks", "# Plan"]


def test_corrupt_file_is_a_problem_not_a_crash(workspace: Path):
    (workspace / "x.pptx").write_bytes(b"junk")
    v = verify_file(workspace / "x.pptx")
    assert not v.ok and "corrupt" in v.problems[0]
