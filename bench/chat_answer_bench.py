"""Seconds to a plain answer on the default embedded model, on each chat surface (issue 16).

"What is 2 + 3?" is asked on three surfaces: the web chat (the request the web app's chat
page sends: a signed-in cookie, POST /v1/chat/completions with model spud-agent, streamed, a
new chat each time), `spud-agent` through the openai SDK (an API key, streamed, a new chat
each time), and the `spud chat` REPL (one process fed the question on stdin each time it
prompts, so the questions follow one another in one sitting; its start and model load are
shown apart). A warm-up turn on each surface is not counted. For each turn: seconds from
sending to the first streamed piece of the answer and to its last piece, the number of
pieces (the REPL: the reads of its stdout that carried some of the answer), the tool steps
(the server's spud_step chunks; the REPL's shown steps, and the tool calls its session
stored, `finish` aside) and whether the answer has a 5. "Spread" is the seconds between the
first and the last piece: near 0 means the answer came whole. Prints a table (median and max
over the repetitions) and writes bench/results/chat_answer_bench.json.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_fixtures import ADMIN_PASSWORD, ServerProc, start_server  # noqa: E402

from spud.config import Settings  # noqa: E402
from spud.service.sessions import SessionService  # noqa: E402

RESULTS = Path(__file__).parent / "results"
QUESTION = "What is 2 + 3?"
SURFACES = ("web chat", "spud-agent", "spud chat")
TURN_S = 900  # a turn on a starved machine; nothing is asserted on time


@dataclass
class Turn:
    """One question answered on one surface."""

    first_s: float  # send to the first piece of the answer (the whole answer when unstreamed)
    answer_s: float  # send to the last piece
    pieces: int
    tool_steps: int
    answer: str
    status: str = ""

    @property
    def has_5(self) -> bool:
        return "5" in self.answer


def streamed_turn(sent: float, chunks: list[tuple[float, dict[str, Any]]]) -> Turn:
    """A Turn from the stream's chunks as they arrived (time, chunk)."""
    texts = [(t, c["choices"][0]["delta"].get("content")) for t, c in chunks if c.get("choices")]
    pieces = [(t, text) for t, text in texts if text]
    status = next((c["spud_status"] for _, c in chunks if "spud_status" in c), "")
    steps = sum(1 for _, c in chunks if "spud_step" in c)
    if not pieces:
        return Turn(float("nan"), float("nan"), 0, steps, "", status)
    answer = "".join(text for _, text in pieces)
    return Turn(pieces[0][0] - sent, pieces[-1][0] - sent, len(pieces), steps, answer, status)


def read_sse(response: httpx.Response) -> list[tuple[float, dict[str, Any]]]:
    chunks = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunks.append((time.perf_counter(), json.loads(line[6:])))
    return chunks


def web_chat(server: ServerProc) -> Turn:
    """What the chat page sends (static/spud.js): a new chat, the signed-in cookie, no key."""
    body = {
        "model": "spud-agent",
        "spud_model": None,
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
        "session_id": None,
        "regenerate": False,
    }
    with httpx.Client(base_url=server.url, timeout=TURN_S) as browser:
        signed = browser.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        signed.raise_for_status()
        sent = time.perf_counter()
        with browser.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            return streamed_turn(sent, read_sse(response))


def spud_agent(server: ServerProc) -> Turn:
    """The official openai SDK, streaming from model spud-agent."""
    client = server.openai()
    sent = time.perf_counter()
    stream = client.with_options(timeout=TURN_S).chat.completions.create(
        model="spud-agent", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = [(time.perf_counter(), c.model_dump(exclude_none=True)) for c in stream]
    return streamed_turn(sent, chunks)


class Output:
    """A process's stdout as it arrives: each read with its time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.reads: list[tuple[float, str]] = []
        self.text = ""
        self.closed = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream.fileno(),), daemon=True).start()

    def _read(self, fd: int) -> None:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        while data := os.read(fd, 65536):
            with self._changed:
                part = decode(data)
                self.reads.append((time.perf_counter(), part))
                self.text += part
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, marker: str, start: int) -> None:
        """Until marker appears in the text from start on."""
        with self._changed:
            self._changed.wait_for(lambda: self.closed or marker in self.text[start:], TURN_S)
            if marker not in self.text[start:]:
                raise RuntimeError(f"no {marker!r} from spud chat: {self.text[-2000:]!r}")


class SpudChat:
    """One `spud chat` process, asked question after question in the same sitting."""

    def __init__(self, tmp: Path) -> None:
        self.home, ws = tmp / "repl-home", tmp / "repl-ws"
        ws.mkdir()
        env = {
            **os.environ,
            "SPUD_HOME": str(self.home),
            "SPUD_CONFIG": str(tmp / "none.toml"),
            "COLUMNS": "200",
        }
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spud", "chat", "--workspace", str(ws)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdout
        self.out = Output(self.proc.stdout)
        self.out.wait_for("you> ", 0)
        self.load_s = time.perf_counter() - started  # start, imports, the model loaded

    def ask(self) -> Turn:
        """The question once the REPL prompts; the turn ends at its next prompt."""
        assert self.proc.stdin
        mark, first_read = len(self.out.text), len(self.out.reads)
        sent = time.perf_counter()
        self.proc.stdin.write((QUESTION + "\n").encode())
        self.proc.stdin.flush()
        self.out.wait_for("you> ", mark)
        turn = repl_turn(sent, mark, self.out.reads[first_read:], self.out.text)
        shown = self.out.text[mark:].splitlines()
        turn.tool_steps = sum(1 for line in shown if line.startswith("→ "))  # render()'s steps
        return turn

    def close(self) -> int:
        """Ctrl-D; the tool calls its session stored (`finish` aside), -1 if none was said."""
        assert self.proc.stdin
        mark = len(self.out.text)
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        try:
            self.out.wait_for("session ", mark)
        except RuntimeError:
            return -1
        session = re.search(r"session ([0-9a-f]{8,})", self.out.text[mark:])
        if not session:
            return -1
        messages = SessionService(Settings(home=self.home)).messages(session.group(1))
        return sum(1 for m in messages if m.role == "tool" and m.name != "finish")


def repl_turn(sent: float, mark: int, reads: list[tuple[float, str]], text: str) -> Turn:
    """The answer between "spud> " and the next prompt, and the reads that carried it."""
    reply = text[mark:]
    begin = reply.find("spud> ")
    end = reply.find("you> ", begin)
    if begin < 0 or end < 0:
        return Turn(float("nan"), float("nan"), 0, 0, "")
    begin += len("spud> ")
    pieces, at = [], 0
    for t, part in reads:  # a read counts when it carries some of the answer
        lo, hi = max(at, begin), min(at + len(part), end)
        if hi > lo and reply[lo:hi].strip():
            pieces.append(t)
        at += len(part)
    answer = reply[begin:end].strip()
    return Turn(pieces[0] - sent, pieces[-1] - sent, len(pieces), 0, answer)


def summary(turns: list[Turn]) -> dict[str, Any]:
    def stat(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "max": max(values)}

    return {
        "first_piece_s": stat([t.first_s for t in turns]),
        "answer_s": stat([t.answer_s for t in turns]),
        "spread_s": stat([t.answer_s - t.first_s for t in turns]),
        "pieces": {
            "median": statistics.median(t.pieces for t in turns),
            "min": min(t.pieces for t in turns),
        },
        "tool_steps": sum(t.tool_steps for t in turns),
        "answers_with_5": sum(t.has_5 for t in turns),
        "turns": len(turns),
    }


def table(rows: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'surface':<12}{'first piece s':>16}{'answer s':>16}{'spread s':>10}"
        f"{'pieces':>10}{'tools':>7}{'has 5':>7}"
    )
    for name, s in rows.items():
        f, a, p = s["first_piece_s"], s["answer_s"], s["pieces"]
        print(
            f"{name:<12}{f['median']:>8.1f} ({f['max']:>5.1f})"
            f"{a['median']:>8.1f} ({a['max']:>5.1f})"
            f"{s['spread_s']['median']:>10.2f}{p['median']:>6.0f} ({p['min']})"
            f"{s['tool_steps']:>7}{s['answers_with_5']:>5}/{s['turns']}"
        )
    print("(median, and max in brackets; pieces: median, and min in brackets)")


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name in [k for k in os.environ if k.startswith("SPUD_")]:
        del os.environ[name]  # the defaults, as a newcomer has them
    load_before = os.getloadavg()
    turns: dict[str, list[Turn]] = {s: [] for s in SURFACES}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = start_server(tmp / "server-home", start_s=900)  # the default model
        repl = None
        try:
            repl = SpudChat(tmp)
            print(f"spud chat started and prompted in {repl.load_s:.1f} s", flush=True)
            ask: dict[str, Callable[[], Turn]] = {
                "web chat": lambda: web_chat(server),
                "spud-agent": lambda: spud_agent(server),
                "spud chat": repl.ask,
            }
            for name, go in ask.items():  # warm-up: the model loaded, its prompt cache filled
                warm = go()
                print(f"warm-up {name}: {warm.answer_s:.1f} s, {warm.answer!r}", flush=True)
            for n in range(args.repeat):  # rounds: the machine's load falls on all alike
                for name, go in ask.items():
                    turn = go()
                    turns[name].append(turn)
                    print(
                        f"{name} {n + 1}: first {turn.first_s:.1f} s, "
                        f"answer {turn.answer_s:.1f} s, "
                        f"{turn.pieces} pieces, {turn.tool_steps} tools: {turn.answer!r}",
                        flush=True,
                    )
            stored_tools = repl.close()
        finally:
            if repl and repl.proc.poll() is None:
                repl.proc.kill()
            server.stop()
    rows = {name: summary(t) for name, t in turns.items()}
    table(rows)
    print(
        f"spud chat: started and prompted in {repl.load_s:.1f} s (not counted above); "
        f"tool calls stored in its session, warm-up included: {stored_tools}"
    )
    out = {
        "question": QUESTION,
        "model": Settings.model_fields["model"].default,
        "commit": git_commit(),
        "nice": os.nice(0),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "spud_chat_load_s": repl.load_s,
        "spud_chat_stored_tool_calls": stored_tools,
        "surfaces": rows,
        "turns": {
            name: [{**asdict(t), "has_5": t.has_5} for t in ts] for name, ts in turns.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chat_answer_bench.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
