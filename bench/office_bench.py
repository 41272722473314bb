"""Benchmarks office work: workbook recalculation time and memory, and PDF reading time."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

SIZES = (1_000, 10_000, 100_000)
RESULTS = Path(__file__).parent / "results" / "office_bench.json"


def make_workbook(path: Path, formulas: int) -> None:
    """A data sheet of numbers, one formula per row, and a summary over everything."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    data = wb.create_sheet("Data")
    for i in range(1, formulas):
        data.append([i, i % 7, f"=A{i}*B{i}+1"])
    summary = wb.create_sheet("Summary")
    summary.append([f"=SUM(Data!C1:C{formulas - 1})"])
    wb.save(path)


def make_pdf(path: Path, pages: int) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for n in range(1, pages + 1):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Page {n}. " + "Quarterly figures and commentary. " * 60)
    pdf.output(str(path))


def measure_recalc(path: Path) -> dict[str, float]:
    """Run in a child process so peak memory belongs to this workbook alone."""
    from spud.tools.office.recalc import recalculate
    from spud.tools.office.workbook import load_workbook

    t0 = time.perf_counter()
    wb = load_workbook(path)
    t1 = time.perf_counter()
    result = recalculate(wb)
    t2 = time.perf_counter()
    return {
        "load_s": t1 - t0,
        "recalc_s": t2 - t1,
        "formulas": result.formulas,
        "errors": len(result.errors),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_baseline(path: Path) -> dict[str, float]:
    """The same workbook through formulas.ExcelModel as a whole (the engine's own way)."""
    import formulas

    t0 = time.perf_counter()
    model = formulas.ExcelModel().loads(str(path)).finish()
    t1 = time.perf_counter()
    model.calculate()
    t2 = time.perf_counter()
    return {
        "load_s": t1 - t0,
        "recalc_s": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_pdf(path: Path) -> dict[str, float]:
    from spud.tools.office.documents import pdf_pages

    t0 = time.perf_counter()
    pages = pdf_pages(path)
    return {
        "read_s": time.perf_counter() - t0,
        "pages": len(pages),
        "chars": sum(len(p) for p in pages),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(kind: str, path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, path], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument(
        "--baseline-sizes",
        type=int,
        nargs="*",
        default=[1_000],
        help="sizes also recalculated by formulas.ExcelModel, for a same-run ratio",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child
        fn = {"xlsx": measure_recalc, "baseline": measure_baseline, "pdf": measure_pdf}[kind]
        print(json.dumps(fn(Path(path))))
        return
    rows: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"w{n}.xlsx"
            make_workbook(path, n)
            spud = child("xlsx", str(path))
            rows.append({"case": f"recalc {n} formulas", **spud})
            if n in args.baseline_sizes:
                base = child("baseline", str(path))
                ratio = base["load_s"] + base["recalc_s"]
                ratio /= spud["load_s"] + spud["recalc_s"]
                rows.append({"case": f"  ExcelModel, {n} formulas", **base, "ratio": ratio})
        pdf = Path(tmp) / "doc.pdf"
        make_pdf(pdf, args.pages)
        rows.append({"case": f"read {args.pages}-page pdf", **child("pdf", str(pdf))})
    table = Table(title="office bench")
    cols = ("case", "load_s", "recalc_s", "read_s", "peak_rss_mb", "ratio")
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            *(f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols)
        )
    Console().print(table)
    print("ratio: ExcelModel (load + recalc) time / Spud's, on the same workbook")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine()}
    RESULTS.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
