"""Reference solutions of the held-out office and browsing tasks (not for reading while tuning)."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from eval_solutions.office_web_tools import Browser, Tools, fetch

SOLUTIONS: dict[str, Callable[..., str]] = {}


def solution(task_id: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def register(fn: Callable[..., str]) -> Callable[..., str]:
        SOLUTIONS[task_id] = fn
        return fn

    return register


@solution("sheet-payroll-overtime")
def _payroll(ws: Path, site: str) -> str:
    cells: dict[str, Any] = {"E1": "Pay", "A28": "Total", "E28": "=SUM(E2:E27)"}
    for r in range(2, 28):
        cells[f"E{r}"] = f"=MIN(C{r},40)*D{r}+MAX(C{r}-40,0)*D{r}*1.5"
    Tools(ws)("sheet_write", path="timesheet.xlsx", sheet="Week 23", cells=cells)
    return "Pay added."


@solution("sheet-class-summary")
def _classes(ws: Path, site: str) -> str:
    t = Tools(ws)
    t("sheet_add", path="grades.xlsx", name="Classes")
    cells: dict[str, Any] = {"A1": "Class", "B1": "Results", "C1": "Average score"}
    for r, c in enumerate(("7A", "7B", "7C"), 2):
        cells[f"A{r}"] = c
        cells[f"B{r}"] = f"=COUNTIF(Scores!$B$2:$B$49,A{r})"
        cells[f"C{r}"] = f"=AVERAGEIF(Scores!$B$2:$B$49,A{r},Scores!$D$2:$D$49)"
    t("sheet_write", path="grades.xlsx", sheet="Classes", cells=cells)
    return "Classes sheet added."


@solution("sheet-fix-commission")
def _commission(ws: Path, site: str) -> str:
    cells = {
        f"C{r}": f"=B{r}*Settings!$B$1+IF(B{r}>=Settings!$B$2,Settings!$B$3,0)"
        for r in range(2, 22)
    }
    Tools(ws)("sheet_write", path="commission.xlsx", sheet="Reps", cells=cells)
    return "Fixed C9:C11 (relative rate) and C15 (typed number)."


@solution("docx-stock-report")
def _stock_report(ws: Path, site: str) -> str:
    t = Tools(ws)
    units, value, per = 0, Decimal(0), {}
    for sheet in ("North", "South"):
        for _, product, n, cost in t.rows("warehouse.xlsx", sheet)[1:]:
            units += n
            value += n * Decimal(str(cost))
            per[product] = per.get(product, 0) + n
    top = max(per, key=per.get)
    blocks = [
        {"kind": "heading", "text": "Stock report", "level": 1},
        {"kind": "paragraph", "text": f"Units in stock: {units}"},
        {"kind": "paragraph", "text": f"Stock value: {value:.2f}"},
        {"kind": "paragraph", "text": f"Largest holding: {top}"},
    ]
    t("docx_write", path="stock-report.docx", blocks=blocks)
    return "Report written."


@solution("web-recipe-minutes")
def _minutes(ws: Path, site: str) -> str:
    recipe = fetch(f"{site}/{fetch(f'{site}/recipes.html').link('Leek and Potato Soup')}")
    total = sum(int(m) for m in re.findall(r"(?:Prep|Cook): (\d+) min", recipe.text))
    (ws / "minutes.txt").write_text(str(total))
    return f"{total} minutes"


@solution("web-compare-hotels")
def _hotels(ws: Path, site: str) -> str:
    offers = []
    for hotel, href in fetch(f"{site}/stay.html").links:
        if href.endswith(".html"):
            header, *rows = fetch(f"{site}/{href}").rows
            double = next(r for r in rows if r[0] == "Double")
            nights = [double[header.index(d)] for d in ("3 July", "4 July")]
            offers.append((sum(int(n.strip("€")) for n in nights), hotel))
    total, hotel = min(offers)
    (ws / "hotel.txt").write_text(f"{hotel},{total}\n")
    return hotel


@solution("web-york-trains-csv")
def _york(ws: Path, site: str) -> str:
    _, *rows = fetch(f"{site}/departures.html").rows
    keep = [[r[0], r[2]] for r in rows if r[1] == "York" and r[3] != "Cancelled"]
    with (ws / "york.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["time", "platform"], *keep])
    return f"{len(keep)} trains"


@solution("web-library-booking")
def _booking(ws: Path, site: str, b: Browser) -> str:
    _, *rooms = fetch(f"{site}/rooms.html").rows
    room = min((int(r[1]), r[0]) for r in rooms if int(r[1]) >= 6)[1]
    b("browser_open", url=f"{site}/rooms.html")
    b.click("link", "booking form")
    b.type("Name on the booking", "Linus Torvalds")
    b.select("Room", room)
    b.select("Time slot", "Afternoon (13-17)")
    b.click("checkbox", "I need a projector")
    b.click("button", "Book")
    return f"Booked {room}."
