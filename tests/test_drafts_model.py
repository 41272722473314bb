"""Drafts on the real 1.5B model: a code fix, a file chore, a workbook edit and a web look-up."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from spud.browser_policy import BrowserPolicy
from spud.config import Settings
from spud.core.run import Limits
from spud.eval.site import serve
from spud.service.sessions import RunSpec, SessionService
from spud.tools.office.recalc import recalculate
from spud.tools.office.workbook import load_workbook

pytestmark = pytest.mark.model

MODEL = "qwen2.5-coder-1.5b"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> SessionService:
    home = tmp_path_factory.mktemp("home")
    limits = Limits(max_steps=12, max_seconds=600)
    settings = Settings(
        home=home,
        context_window=8192,
        limits=limits,
        model=MODEL,
        browser_policy=BrowserPolicy(allow_loopback=True),  # the test's site is on this machine
    )
    return SessionService(settings)


def run(svc: SessionService, ws: Path, task: str):
    result = svc.execute(RunSpec(workspace=ws, task=task, auto_approve=True))
    drafts = [m for m in svc.messages(result.session_id) if m.meta.get("kind") == "draft"]
    return result, drafts


def test_the_model_fixes_a_bug_by_a_draft(svc: SessionService, tmp_path: Path):
    (tmp_path / "calc.py").write_text(
        "def add(a, b):\n    return a - b\n\n\ndef double(x):\n    return 2 * x\n"
    )
    (tmp_path / "test_calc.py").write_text(
        "from calc import add, double\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_double():\n    assert double(4) == 8\n"
    )
    result, drafts = run(svc, tmp_path, "The test in test_calc.py fails. Fix the bug in calc.py.")
    assert result.status == "finished", result.summary
    assert drafts, "the fix should come from a draft"
    assert "checked and passed" in result.summary
    text = (tmp_path / "calc.py").read_text()
    assert "a + b" in text and "return 2 * x" in text  # the rest of the module kept


def test_the_model_does_a_file_chore_by_a_script(svc: SessionService, tmp_path: Path):
    (tmp_path / "people.csv").write_text("name,age\nAda,36\nBob,41\nCy,29\n")
    task = (
        "Read people.csv and write the names of the people older than 30, one per line, to old.txt."
    )
    result, drafts = run(svc, tmp_path, task)
    assert result.status == "finished", result.summary
    assert drafts and drafts[0].tool_calls[0].name == "bash"
    assert (tmp_path / "old.txt").read_text().split() == ["Ada", "Bob"]


def test_the_model_edits_a_workbook(svc: SessionService, tmp_path: Path):
    """By a script draft or, when the drafts give no usable script (the 1.5B sometimes nests
    quotes in an f-string, which Python 3.11 refuses), by the office tools after them."""
    wb = openpyxl.Workbook()
    for row in [["Region", "Sales"], ["North", 120], ["South", 80], ["East", 50]]:
        wb.active.append(row)
    wb.save(tmp_path / "sales.xlsx")
    result, _ = run(svc, tmp_path, "In sales.xlsx, put a formula in B5 that adds up B2:B4.")
    assert result.status == "finished", result.summary
    assert "verify sales.xlsx" in result.summary  # the office check ran before finishing
    book = load_workbook(tmp_path / "sales.xlsx")
    assert str(book.active["B5"].value).startswith("=")
    assert recalculate(book).value("Sheet", "B5") == 250


SHOP = {
    "index.html": "<html><head><title>Spud Shop</title></head><body><main><h1>Kitchen tools</h1>"
    "<ul><li><a href='peeler.html'>Spud Peeler</a></li><li><a href='masher.html'>Masher</a>"
    "</li></ul></main></body></html>",
    "peeler.html": "<html><head><title>Spud Peeler</title></head><body><main><h1>Spud Peeler"
    "</h1><p>Price: $12.50</p><p>In stock.</p></main></body></html>",
    "masher.html": "<html><head><title>Masher</title></head><body><main><h1>Masher</h1>"
    "<p>Price: $8.00</p></main></body></html>",
}


def test_the_model_looks_up_a_price_on_a_linked_page(svc: SessionService, tmp_path: Path):
    with serve(SHOP) as site:
        task = f"Open {site}/index.html and tell me the price of the Spud Peeler."
        result, drafts = run(svc, tmp_path, task)
    assert result.status == "finished", result.summary
    assert drafts[0].tool_calls[0].name == "browser_pages"  # the site was read first
    assert "12.50" in result.summary
