"""Per-action latency of the browser tools and snapshot size versus raw HTML on the test pages."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sites.server import SiteServer  # noqa: E402

from spud.browser_policy import BrowserPolicy  # noqa: E402
from spud.tools.browser.session import BrowserSession  # noqa: E402
from spud.tools.browser.snapshot import estimate_tokens  # noqa: E402
from spud.tools.browser.tools import browser_tools  # noqa: E402

PAGES = ["index.html", "page2.html", "form.html", "table.html", "newtab.html", "download.html"]
REPEAT = 5


def _counter():  # noqa: ANN202
    """The embedded model's tokenizer when available, else about four characters a token."""
    try:
        from llama_cpp import Llama

        from spud.config import Settings
        from spud.models.registry import REGISTRY, model_path

        llm = Llama(
            str(model_path(REGISTRY["qwen2.5-coder-0.5b"], Settings().model_cache)),
            vocab_only=True,
            verbose=False,
        )
        return "qwen2.5 tokenizer", lambda text: len(llm.tokenize(text.encode(), add_bos=False))
    except Exception:  # noqa: BLE001
        return "chars/4", estimate_tokens


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    result = fn()
    assert getattr(result, "ok", True), result
    return (time.perf_counter() - start) * 1000


def main() -> None:
    site = SiteServer()
    tokenizer, count = _counter()
    ws = Path(tempfile.mkdtemp())
    session = BrowserSession(ws, BrowserPolicy(allow_loopback=True, snapshot_tokens=20000))
    tools = {t.name: t for t in browser_tools(ws, session=session)}

    def run(name: str, **args: object):  # noqa: ANN202
        return tools[name].run(tools[name].Args(**args))

    start = time.perf_counter()
    session.page()
    launch_ms = (time.perf_counter() - start) * 1000
    timings: dict[str, list[float]] = {"open": [], "snapshot": [], "click": []}
    sizes = []
    for page in PAGES:
        url = f"{site.url}/{page}"
        html = (ROOT / "tests" / "sites" / page).read_text()
        for _ in range(REPEAT):
            timings["open"].append(_timed(lambda url=url: run("browser_open", url=url)))
            timings["snapshot"].append(_timed(lambda: run("browser_snapshot")))
        snap = session.snapshot(20000)
        sizes.append(
            {
                "page": page,
                "html_tokens": count(html),
                "snapshot_tokens": count(snap),
                "html_bytes": len(html.encode()),
                "snapshot_bytes": len(snap.encode()),
            }
        )
    for _ in range(REPEAT):  # a click that changes the page without navigating
        run("browser_open", url=f"{site.url}/table.html")
        ref = next(
            line.split('button "Price" [')[1].split("]")[0]
            for line in session.snapshot(20000).splitlines()
            if 'button "Price" [' in line
        )
        timings["click"].append(_timed(lambda ref=ref: run("browser_click", ref=ref)))
    session.close()
    site.close()

    console = Console()
    latency = Table(
        title=f"browser tool latency (ms, {REPEAT * len(PAGES)} runs; launch {launch_ms:.0f} ms)"
    )
    for col in ("action", "median", "p90", "min"):
        latency.add_column(col, justify="right" if col != "action" else "left")
    summary = {}
    for action, values in timings.items():
        values.sort()
        p90 = values[int(len(values) * 0.9) - 1]
        summary[action] = {
            "median_ms": statistics.median(values),
            "p90_ms": p90,
            "min_ms": values[0],
        }
        latency.add_row(
            action, f"{statistics.median(values):.0f}", f"{p90:.0f}", f"{values[0]:.0f}"
        )
    console.print(latency)
    table = Table(title=f"snapshot size vs raw HTML (tokens: {tokenizer})")
    for col in ("page", "html tokens", "snapshot tokens", "ratio"):
        table.add_column(col, justify="right" if col != "page" else "left")
    for row in sizes:
        table.add_row(
            row["page"],
            str(row["html_tokens"]),
            str(row["snapshot_tokens"]),
            f"{row['snapshot_tokens'] / row['html_tokens']:.2f}",
        )
    console.print(table)
    out = ROOT / "bench" / "results" / "browser_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "launch_ms": launch_ms,
                "latency": summary,
                "sizes": sizes,
                "tokenizer": tokenizer,
                "repeat": REPEAT,
            },
            indent=2,
        )
    )
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
