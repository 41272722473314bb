"""Office and browsing tasks of both splits: reference work passes, doing nothing or wrong work fails.

The reference solutions use Spud's own tools (sheet_*, docx_write, pptx_write) for the office
tasks, read the served pages over HTTP for the look-ups, and fill the forms in real Chromium with
the browser tools, so every task is shown to be doable with what the agent has.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from spud.eval.checks import CHECKERS, CheckContext, run_checks, site_log
from spud.eval.runner import prepare
from spud.eval.site import serve
from spud.eval.suite import Suite, Task, load_suite

sys.path.insert(0, str(Path(__file__).parent))
from eval_solutions import office_web_heldout  # noqa: E402
from eval_solutions.office_web_tools import Browser, Tools, fetch, grid  # noqa: E402

DEV = load_suite("spud")
HELDOUT = load_suite("spud-heldout")
OURS = ("office", "browsing")
TASKS: dict[str, tuple[Suite, Task]] = {
    t.id: (suite, t) for suite in (DEV, HELDOUT) for t in suite.tasks if t.category in OURS
}
# Small tasks kept from the first suite; their known-good outputs live in test_eval_checks.py.
KEPT = {"sheet-sum", "sheet-update-price", "sheet-fix-div0", "web-price", "web-follow-link"}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(tmp_path)
    yield b
    b.session.close()


# -- reference solutions of the dev split -------------------------------------------------------

Solution = Callable[..., str]
SOLUTIONS: dict[str, Solution] = {}


def solution(task_id: str) -> Callable[[Solution], Solution]:
    def register(fn: Solution) -> Solution:
        SOLUTIONS[task_id] = fn
        return fn

    return register


@solution("sheet-order-totals")
def _order_totals(ws: Path, site: str) -> str:
    t = Tools(ws)
    cells: dict[str, Any] = {f"G{r}": f"=E{r}*F{r}" for r in range(2, 32)}
    t("sheet_write", path="orders.xlsx", sheet="Orders", cells={"G1": "Line total", **cells})
    t("sheet_write", path="orders.xlsx", cells={"A32": "Total", "G32": "=SUM(G2:G31)"})
    return "Added line totals and a total row."


@solution("sheet-region-summary")
def _region_summary(ws: Path, site: str) -> str:
    t = Tools(ws)
    t("sheet_add", path="sales.xlsx", name="Summary")
    cells: dict[str, Any] = {"A1": "Region", "B1": "Total", "C1": "Average", "A6": "Total"}
    for r, region in enumerate(["North", "South", "East", "West"], 2):
        cells[f"A{r}"] = region
        cells[f"B{r}"] = f"=SUMIF(Sales!$B$2:$B$41,A{r},Sales!$D$2:$D$41)"
        cells[f"C{r}"] = f"=AVERAGEIF(Sales!$B$2:$B$41,A{r},Sales!$D$2:$D$41)"
    cells["B6"] = "=SUM(B2:B5)"
    t("sheet_write", path="sales.xlsx", sheet="Summary", cells=cells)
    return "Summary sheet added."


@solution("sheet-fix-q1")
def _fix_q1(ws: Path, site: str) -> str:
    t = Tools(ws)
    cells = {"B6": "=Jan!B6+Feb!B6+Mar!B6", "B14": "=SUM(B2:B13)"}
    t("sheet_write", path="budget.xlsx", sheet="Q1", cells=cells)
    return "Fixed Q1!B6 (read Feb!B7) and Q1!B14 (left out row 13)."


@solution("sheet-reorder-list")
def _reorder(ws: Path, site: str) -> str:
    t = Tools(ws)
    header, *items = t.rows("inventory.xlsx", "Stock")
    low = sorted((r for r in items if r[3] < r[4]), key=lambda r: r[3])
    t("sheet_add", path="inventory.xlsx", name="Reorder")
    cells = grid([header, *low])
    t("sheet_write", path="inventory.xlsx", sheet="Reorder", cells=cells)
    return f"{len(low)} items to reorder."


@solution("docx-sales-memo")
def _memo(ws: Path, site: str) -> str:
    t = Tools(ws)
    _, *stores = t.rows("stores.xlsx", "May")
    best = max(stores, key=lambda r: r[3])
    blocks = [
        {"kind": "heading", "text": "May sales memo", "level": 1},
        {"kind": "paragraph", "text": f"Total sales: {sum(r[3] for r in stores)}"},
        {"kind": "paragraph", "text": f"Best store: {best[0]}"},
        {
            "kind": "paragraph",
            "text": f"Stores under 1500 visitors: {sum(r[2] < 1500 for r in stores)}",
        },
        {"kind": "paragraph", "text": "A solid month overall."},
    ]
    t("docx_write", path="memo.docx", blocks=blocks)
    return "memo.docx written."


@solution("csv-to-xlsx")
def _csv_to_xlsx(ws: Path, site: str) -> str:
    t = Tools(ws)
    rows = list(csv.reader((ws / "expenses.csv").open()))
    t("sheet_add", path="expenses.xlsx", name="Expenses")
    cells = grid(rows)
    t("sheet_write", path="expenses.xlsx", sheet="Expenses", cells=cells)
    t(
        "sheet_write",
        path="expenses.xlsx",
        sheet="Expenses",
        cells={"C27": "Total", "D27": "=SUM(D2:D26)"},
    )
    t("sheet_format", path="expenses.xlsx", sheet="Expenses", range="A1:D1", bold=True)
    t("sheet_format", path="expenses.xlsx", sheet="Expenses", range="D2:D26", number_format="0.00")
    return "expenses.xlsx written."


@solution("pptx-q3-review")
def _deck(ws: Path, site: str) -> str:
    t = Tools(ws)
    _, *weeks = t.rows("kpis.xlsx", "Weekly")
    slides = [
        {"title": "Q3 review", "notes": "Weeks W27 to W39"},
        {"title": "Revenue", "bullets": [f"Total revenue: {sum(w[1] for w in weeks)}", "Up on Q2"]},
        {"title": "Costs", "bullets": ["Stable", f"Total costs: {sum(w[2] for w in weeks)}"]},
        {"title": "Next steps", "bullets": ["Hire two sales reps"]},
    ]
    t("pptx_write", path="review.pptx", slides=slides)
    return "review.pptx written."


@solution("web-catalog-stock")
def _stock(ws: Path, site: str) -> str:
    item = fetch(f"{site}/{fetch(f'{site}/catalog.html').link('Garden Fork')}")
    stock = re.search(r"In stock\s*(\d+) units", item.text)
    assert stock
    (ws / "stock.txt").write_text(stock[1] + "\n")
    return f"{stock[1]} units"


@solution("web-compare-kettle")
def _kettle(ws: Path, site: str) -> str:
    offers = []
    for shop, href in fetch(f"{site}/index.html").links:
        for row in fetch(f"{site}/{href}").rows:
            if row and row[0] == "Aurora 1.7L":
                price = next(Decimal(m[0]) for c in row[1:] if (m := re.search(r"\d+\.\d\d", c)))
                offers.append((price, shop))
    price, shop = min(offers)
    (ws / "best.txt").write_text(f"{shop},{price}\n")
    return shop


@solution("web-rainfall-csv")
def _rainfall(ws: Path, site: str) -> str:
    header, *rows = fetch(f"{site}/stations.html").rows
    assert header[3] == "Rainfall (mm)"
    with (ws / "stations.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["station", "rainfall_mm"], *[[r[0], r[3]] for r in rows]])
    return "stations.csv written"


@solution("web-unpaid-invoices")
def _unpaid(ws: Path, site: str) -> str:
    total, url = Decimal(0), f"{site}/invoices/page1.html"
    while url:
        page = fetch(url)
        total += sum((Decimal(r[2]) for r in page.rows[1:] if r[3] == "Unpaid"), Decimal(0))
        nxt = [href for text, href in page.links if text == "Next page"]
        url = f"{site}/invoices/{nxt[0]}" if nxt else ""
    (ws / "unpaid.txt").write_text(f"{total:.2f}")
    return f"{total:.2f}"


@solution("web-lightest-laptop")
def _lightest(ws: Path, site: str) -> str:
    weights = []
    for name, href in fetch(f"{site}/laptops.html").links:
        if href.startswith("laptop-"):
            spec = dict(r for r in fetch(f"{site}/{href}").rows[1:])
            weights.append((float(spec["Weight"].split()[0]), name))
    name = min(weights)[1]
    (ws / "lightest.txt").write_text(name)
    return name


@solution("web-support-ticket")
def _ticket(ws: Path, site: str, b: Browser) -> str:
    b("browser_open", url=f"{site}/help.html")
    b.click("link", "Contact support")
    b.type("Your name", "Ada Lovelace")
    b.type("Email", "ada@example.org")
    b.select("Topic", "Billing")
    b.type("Message", "I was charged twice for order 1042.")
    b.click("checkbox", "Email me a copy of this ticket")
    assert "navigated to" in b.click("button", "Send ticket")
    return "Ticket sent."


@solution("web-tea-order")
def _tea(ws: Path, site: str, b: Browser) -> str:
    green = [r for r in fetch(f"{site}/teas.html").rows if r[2] == "Green"]
    code = min(green, key=lambda r: Decimal(r[3].strip("€")))[0]
    b("browser_open", url=f"{site}/teas.html")
    b.click("link", "order form")
    b.type("Product code", code)
    b.select("Number of tins", "3")
    b.select("Delivery", "Express (next day)")
    b.click("checkbox", "Gift wrap")
    # An order button needs browser_submit (approved in an eval run), not a plain click.
    assert "confirm.html?" in b("browser_submit", ref=b.ref("button", "Place order"))
    return f"Ordered 3 x {code}."


@solution("web-workshop-signup")
def _signup(ws: Path, site: str, b: Browser) -> str:
    b("browser_open", url=f"{site}/events.html")
    b.click("link", "Register here")
    b.type("Full name", "Grace Hopper")
    b.select("Workshop", "Spreadsheets: pivot tables (14 May)")
    b.select("Lunch", "Vegetarian")
    b.click("checkbox", "I accept the code of conduct")
    b.click("button", "Register")
    return "Registered."


SOLUTIONS.update(office_web_heldout.SOLUTIONS)
NEW = sorted(t for t in TASKS if t not in KEPT)


# -- the tests ------------------------------------------------------------------------------


def fresh(task_id: str, tmp_path: Path) -> tuple[Suite, Task, Path]:
    suite, task = TASKS[task_id]
    ws = tmp_path / task_id
    ws.mkdir()
    prepare(task, ws)
    return suite, task, ws


def verdict(suite: Suite, task: Task, ws: Path, summary: str = "") -> str | None:
    ctx = CheckContext(workspace=ws, status="finished", summary=summary, original=dict(task.files))
    return run_checks(ctx, task.checks, suite.checkers)


def solve(task_id: str, ws: Path, tmp_path: Path) -> str:
    """Run the reference solution while the task's site is served; the answer it gives."""
    _, task = TASKS[task_id]
    fn = SOLUTIONS[task_id]
    with serve(task.site, log=site_log(ws)) as url:
        if "b" not in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
            return fn(ws, url)
        b = Browser(tmp_path)
        try:
            return fn(ws, url, b)
        finally:
            b.session.close()


def test_dev_split_has_ten_office_and_ten_browsing_tasks():
    counts = {c: sum(t.category == c for t in DEV.tasks) for c in OURS}
    assert counts == {"office": 10, "browsing": 10}
    forms = [t for t in DEV.tasks if any(c["fn"] == "site_request" for c in t.checks)]
    assert len(forms) >= 3


def test_heldout_split_has_new_office_and_browsing_tasks():
    counts = {c: sum(t.category == c for t in HELDOUT.tasks) for c in OURS}
    assert counts["office"] >= 4 and counts["browsing"] >= 4
    assert not {t.id for t in HELDOUT.tasks} & {t.id for t in DEV.tasks}


def test_every_new_task_has_a_reference_solution():
    assert sorted(SOLUTIONS) == NEW


@pytest.mark.parametrize("task_id", NEW)
def test_doing_nothing_fails(task_id: str, tmp_path: Path):
    suite, task, ws = fresh(task_id, tmp_path)
    with serve(task.site, log=site_log(ws)) as url:
        if url:
            assert httpx.get(f"{url}/{next(iter(task.site))}").status_code == 200
    assert verdict(suite, task, ws) is not None


@pytest.mark.parametrize("task_id", NEW)
def test_reference_solution_passes(task_id: str, tmp_path: Path):
    suite, task, ws = fresh(task_id, tmp_path)
    answer = solve(task_id, ws, tmp_path)
    assert verdict(suite, task, ws, summary=answer) is None


# -- known-bad work: what a careless agent leaves behind fails ---------------------------------


def test_typed_in_values_instead_of_formulas_fail(tmp_path: Path):
    suite, task, ws = fresh("sheet-order-totals", tmp_path)
    wb = openpyxl.load_workbook(ws / "orders.xlsx")
    sheet = wb["Orders"]
    sheet["G1"], sheet["A32"] = "Line total", "Total"
    for r in range(2, 32):
        sheet[f"G{r}"] = sheet[f"E{r}"].value * sheet[f"F{r}"].value
    sheet["G32"] = "=SUM(G2:G31)"
    wb.save(ws / "orders.xlsx")
    assert verdict(suite, task, ws) == "Orders!G2 holds 124.8, not a formula"


def test_a_summary_range_that_misses_rows_fails(tmp_path: Path):
    suite, task, ws = fresh("sheet-region-summary", tmp_path)
    t = Tools(ws)
    t("sheet_add", path="sales.xlsx", name="Summary")
    cells: dict[str, Any] = {"A1": "Region", "B1": "Total", "C1": "Average"}
    for r, region in enumerate(["North", "South", "East", "West"], 2):
        cells |= {f"A{r}": region, f"B{r}": f"=SUMIF(Sales!B2:B40,A{r},Sales!D2:D40)"}
        cells[f"C{r}"] = f"=AVERAGEIF(Sales!B2:B40,A{r},Sales!D2:D40)"
    t("sheet_write", path="sales.xlsx", sheet="Summary", cells=cells)
    assert re.match(r"Summary!B\d is \d+, expected \d+", verdict(suite, task, ws) or "")


def test_fixing_the_data_instead_of_the_formula_fails(tmp_path: Path):
    suite, task, ws = fresh("sheet-fix-q1", tmp_path)
    wb = openpyxl.load_workbook(ws / "budget.xlsx")
    wb["Feb"]["B7"] = wb["Feb"]["B6"].value  # now the wrong reference gives the right Travel
    wb["Q1"]["B14"] = "=SUM(B2:B13)"
    wb.save(ws / "budget.xlsx")
    assert (verdict(suite, task, ws) or "").startswith("Q1!B7 is")


def test_unsorted_or_unfiltered_reorder_sheet_fails(tmp_path: Path):
    suite, task, ws = fresh("sheet-reorder-list", tmp_path)
    t = Tools(ws)
    header, *items = t.rows("inventory.xlsx", "Stock")
    low = [r for r in items if r[3] < r[4]]  # in sheet order, not by stock
    t("sheet_add", path="inventory.xlsx", name="Reorder")
    cells = grid([header, *low])
    t("sheet_write", path="inventory.xlsx", sheet="Reorder", cells=cells)
    assert "Reorder!A2 is" in verdict(suite, task, ws)
    at_level = next(r for r in items if r[3] == r[4])  # "below" is strict
    low = sorted([*low, at_level], key=lambda r: r[3])
    cells = grid([header, *low])
    t("sheet_write", path="inventory.xlsx", sheet="Reorder", cells=cells)
    assert verdict(suite, task, ws) is not None


def test_amounts_as_text_and_missing_formats_fail(tmp_path: Path):
    suite, task, ws = fresh("csv-to-xlsx", tmp_path)
    rows = list(csv.reader((ws / "expenses.csv").open()))
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "Expenses"
    for row in rows:
        sheet.append(row)  # every amount stays text
    sheet["C27"], sheet["D27"] = "Total", "=SUM(D2:D26)"
    wb.save(ws / "expenses.xlsx")
    assert re.match(r"Expenses!D2 is '[\d.]+', expected [\d.]+", verdict(suite, task, ws))
    for r in range(2, 27):
        sheet[f"D{r}"] = float(sheet[f"D{r}"].value)
    wb.save(ws / "expenses.xlsx")
    assert verdict(suite, task, ws) == "Expenses!A1 is not bold"


def test_memo_and_deck_with_wrong_or_misplaced_lines_fail(tmp_path: Path):
    suite, task, ws = fresh("docx-sales-memo", tmp_path)
    lines = [{"kind": "paragraph", "text": line} for line in task.checks[0]["lines"]]
    heading = {"kind": "heading", "text": "May sales memo", "level": 1}
    total = {"kind": "paragraph", "text": "Total sales: 1,234"}  # separators, wrong sum
    Tools(ws)("docx_write", path="memo.docx", blocks=[heading, total, *lines[1:]])
    assert "memo.docx has no line 'Total sales: " in verdict(suite, task, ws)
    not_a_heading = {"kind": "paragraph", "text": "May sales memo"}
    Tools(ws)("docx_write", path="memo.docx", blocks=[not_a_heading, *lines])
    assert "has no match for /\\A# May sales memo$/" in verdict(suite, task, ws)
    Tools(ws)("docx_write", path="memo.docx", blocks=[heading, *lines])
    assert verdict(suite, task, ws) is None
    suite, task, ws = fresh("pptx-q3-review", tmp_path)
    slides = [{"title": t, "bullets": ["Total revenue: 1"]} for t in ("Q3 review", "Revenue")]
    Tools(ws)("pptx_write", path="review.pptx", slides=slides)
    assert "has slides ['Q3 review', 'Revenue']" in verdict(suite, task, ws)


def test_wrong_look_ups_fail(tmp_path: Path):
    suite, task, ws = fresh("web-catalog-stock", tmp_path)
    (ws / "stock.txt").write_text("28")  # the small fork
    assert verdict(suite, task, ws) == "stock.txt is '28', expected '17'"
    suite, task, ws = fresh("web-compare-kettle", tmp_path)
    (ws / "best.txt").write_text("Brightside Appliances,29.99")  # the 1.2L model
    assert verdict(suite, task, ws) is not None
    suite, task, ws = fresh("web-rainfall-csv", tmp_path)
    (ws / "stations.csv").write_text("station,rainfall_mm\nAberdeen,1 034.2 mm\n")
    assert verdict(suite, task, ws).startswith("stations.csv row 2 is ['Aberdeen'")


def _ticket_form(b: Browser, site: str, topic: str, copy: bool) -> None:
    b("browser_open", url=f"{site}/support.html")
    b.type("Your name", "Ada Lovelace")
    b.type("Email", "ada@example.org")
    b.select("Topic", topic)
    b.type("Message", "I was charged twice for order 1042.")
    if copy:
        b.click("checkbox", "Email me a copy of this ticket")
    b.click("button", "Send ticket")


def test_form_with_a_wrong_select_or_unticked_box_fails(tmp_path: Path, browser: Browser):
    suite, task, ws = fresh("web-support-ticket", tmp_path)
    with serve(task.site, log=site_log(ws)) as url:
        _ticket_form(browser, url, "Account", copy=True)
        assert "sent topic=['account'], expected 'billing'" in verdict(suite, task, ws)
        _ticket_form(browser, url, "Billing", copy=False)
        assert "sent copy=nothing, expected 'yes'" in verdict(suite, task, ws)
        _ticket_form(browser, url, "Billing", copy=True)
        assert verdict(suite, task, ws) is None
        _ticket_form(browser, url, "Account", copy=True)  # the last submission counts
        assert verdict(suite, task, ws) is not None


def test_opening_the_form_without_submitting_fails(tmp_path: Path, browser: Browser):
    suite, task, ws = fresh("web-tea-order", tmp_path)
    with serve(task.site, log=site_log(ws)) as url:
        browser("browser_open", url=f"{url}/order.html")
        browser("browser_open", url=f"{url}/teas.html?sort=price")
    problem = verdict(suite, task, ws)
    assert problem == (
        "no GET form submission to /confirm.html (the site received: GET /teas.html)"
    )


# -- the site server ------------------------------------------------------------------------


def test_serve_records_get_queries_and_post_bodies(tmp_path: Path):
    log = tmp_path / "ws.site-requests.json"
    log.write_text("stale")
    pages = {"a.html": "<p>A</p>", "done.html": "<h1>Done</h1>"}
    with serve(pages, log=log) as url:
        assert not log.exists()  # an earlier run's log never counts
        assert httpx.get(f"{url}/a.html").text == "<p>A</p>"
        assert httpx.get(f"{url}/a.html?q=spud&x=").text == "<p>A</p>"
        reply = httpx.post(f"{url}/done.html", data={"name": "Ada", "tick": "on"})
        assert reply.text == "<h1>Done</h1>"
        reply = httpx.post(f"{url}/send", files={"note": (None, "hi")}, data={"k": "v"})
        assert reply.status_code == 200 and "Thank you" in reply.text
        assert reply.headers["content-type"].startswith("text/html")
    ctx = CheckContext(workspace=tmp_path / "ws")
    check = CHECKERS["site_request"]
    assert check(ctx, path="a.html", method="GET", fields={"q": "spud", "x": ""}) is None
    assert check(ctx, path="/done.html", fields={"name": "Ada", "tick": "on", "other": ""}) is None
    assert check(ctx, path="/send", method="POST", fields={"note": "hi", "k": "v"}) is None
    assert check(ctx, path="/done.html", fields={"name": "Bob"}) == (
        "the submission to /done.html sent name=['Ada'], expected 'Bob'"
    )
    assert check(ctx, path="/a.html", method="POST", fields={}) == (
        "no POST form submission to /a.html (the site received: "
        "GET /a.html, POST /done.html, POST /send)"
    )


def test_document_checkers_on_missing_and_broken_files(tmp_path: Path):
    ctx = CheckContext(workspace=tmp_path)
    (tmp_path / "bad.docx").write_text("not a zip")
    assert (
        CHECKERS["doc_contains"](ctx, path="none.docx", lines=["x"]) == "none.docx does not exist"
    )
    assert "corrupt" in CHECKERS["doc_contains"](ctx, path="bad.docx", lines=["x"])
    assert CHECKERS["slide_titles"](ctx, path="none.pptx", titles=[]) == "none.pptx does not exist"
    assert CHECKERS["range_values"](ctx, path="none.xlsx", range="A1", values=[[1]]) is not None
    assert CHECKERS["csv_equals"](ctx, path="none.csv", rows=[]) == "none.csv does not exist"
