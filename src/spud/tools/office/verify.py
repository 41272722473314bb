"""Deliverable checks: reopen an office file from disk, recalculate, list problems, outline it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from spud.core.messages import Message, ToolResult
from spud.tools.files import WorkspaceTool
from spud.tools.office.documents import document_outline
from spud.tools.office.recalc import recalculate
from spud.tools.office.workbook import OfficeError, load_workbook

OFFICE_SUFFIXES = (".xlsx", ".xlsm", ".docx", ".pptx", ".pdf", ".csv", ".md")


class Verification(BaseModel):
    """What verify found in one file."""

    path: str
    kind: str
    ok: bool
    problems: list[str] = Field(default_factory=list)
    outline: str = ""

    def text(self) -> str:
        status = "OK" if self.ok else f"{len(self.problems)} problems"
        lines = [f"verify {self.path} ({self.kind}): {status}"]
        lines += [f"  - {p}" for p in self.problems[:30]]
        if len(self.problems) > 30:
            lines.append(f"  [and {len(self.problems) - 30} more]")
        if self.outline:
            lines += ["outline:", self.outline]
        return "\n".join(lines)


def verify_file(path: Path) -> Verification:
    """Reopen a deliverable from disk and check it; never raises for a bad file."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".") or "file"
    try:
        if kind in ("xlsx", "xlsm"):
            return _verify_workbook(path)
        if kind in ("docx", "pptx", "pdf", "csv", "md"):
            return _verify_document(path, kind)
    except OfficeError as exc:
        return Verification(path=str(path), kind=kind, ok=False, problems=[str(exc)])
    return Verification(path=str(path), kind=kind, ok=False, problems=[f"cannot verify .{kind}"])


def _verify_workbook(path: Path) -> Verification:
    wb = load_workbook(path)
    problems: list[str] = []
    recalc = recalculate(wb)
    if recalc.skipped:
        problems.append(f"not recalculated: {recalc.skipped}")
    problems += [str(e) for e in recalc.errors]
    for name, dn in wb.defined_names.items():
        if "#REF!" in dn.attr_text:
            problems.append(f"named range {name} is broken: {dn.attr_text}")
    outline: list[str] = []
    for ws in wb.worksheets:
        empty = ws.max_row == 1 and ws.max_column == 1 and ws["A1"].value is None
        if empty:
            problems.append(f"sheet {ws.title!r} is empty")
        outline.append(f"- {ws.title}: {ws.calculate_dimension()}, {len(ws._charts)} charts")
    return Verification(
        path=str(path),
        kind=path.suffix.lower().lstrip("."),
        ok=not problems,
        problems=problems,
        outline="\n".join(outline),
    )


def _verify_document(path: Path, kind: str) -> Verification:
    outline, problems = document_outline(path)
    return Verification(
        path=str(path), kind=kind, ok=not problems, problems=problems, outline=outline
    )


def produced_files(messages: list[Message]) -> list[str]:
    """Workspace-relative paths that tools wrote during a session, in order, once each."""
    seen: dict[str, None] = {}
    for m in messages:
        path: Any = m.meta.get("path")
        if m.role == "tool" and m.meta.get("ok") and isinstance(path, str):
            if m.meta.get("written") or m.meta.get("diff") is not None:
                seen[path] = None
    return list(seen)


def verify_outputs(workspace: Path, messages: list[Message]) -> list[Verification]:
    """Verify every office file a session produced."""
    return [
        verify_file(Path(workspace) / rel)
        for rel in produced_files(messages)
        if rel.lower().endswith(OFFICE_SUFFIXES)
    ]


class VerifyFile(WorkspaceTool):
    """verify_file: check a deliverable the way a reviewer would."""

    name = "verify_file"
    risk = "read"
    description = (
        "Check an output file (.xlsx, .docx, .pptx, .pdf, .csv, .md): reopen it from disk, "
        "recalculate formulas, list error cells, broken references and empty sections, and "
        "show an outline. Use it before finishing."
    )

    class Args(BaseModel):
        path: str = Field(description="File path relative to the workspace.")

    def run(self, args: Args) -> ToolResult:
        target = self.resolve(args.path)
        if isinstance(target, ToolResult):
            return target
        result = verify_file(target)
        result.path = self.rel(target) if target.is_relative_to(self.workspace) else args.path
        return ToolResult(
            output=result.text(),
            ok=result.ok,
            data={"verification": result.model_dump(exclude={"outline"})},
        )
