"""The embedded model does a small spreadsheet task; the verifier confirms the computed total."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from spud.config import Settings
from spud.core.agent import SYSTEM_PROMPT, Agent
from spud.service.sessions import SessionService
from spud.tools.office.recalc import recalculate
from spud.tools.office.sheets import SheetRead, SheetWrite
from spud.tools.office.verify import VerifyFile, verify_file
from spud.tools.office.workbook import load_workbook

pytestmark = pytest.mark.model


def test_model_adds_a_sum_formula(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    wb = openpyxl.Workbook()
    for row in [["Region", "Sales"], ["North", 120], ["South", 80], ["East", 50]]:
        wb.active.append(row)
    wb.save(ws / "sales.xlsx")
    svc = SessionService(Settings(home=tmp_path / "home", context_window=4096))
    tools = [SheetRead(ws), SheetWrite(ws), VerifyFile(ws)]
    agent = Agent(svc.model("qwen2.5-coder-0.5b"), tools, svc.store)
    sid = agent.start(
        "In sales.xlsx, put the formula =SUM(B2:B4) in cell B5 and save.", str(ws), SYSTEM_PROMPT
    )
    result = agent.run(sid)
    assert result.status == "finished", result.summary
    book = load_workbook(ws / "sales.xlsx")
    assert recalculate(book).value("Sheet", "B5") == 250
    assert verify_file(ws / "sales.xlsx").ok
