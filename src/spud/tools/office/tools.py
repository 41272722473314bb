"""The office tool list: spreadsheets, documents and verify_file, bound to one workspace."""

from __future__ import annotations

from pathlib import Path

from spud.core.protocols import Tool
from spud.tools.office.documents import document_tools
from spud.tools.office.sheets import sheet_tools
from spud.tools.office.verify import VerifyFile


def office_tools(workspace: Path) -> list[Tool]:
    """Spreadsheet, document and verification tools, bound to one workspace."""
    return [*sheet_tools(workspace), *document_tools(workspace), VerifyFile(workspace)]
