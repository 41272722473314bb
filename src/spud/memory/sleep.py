"""The nightly sleep: turn the day's sessions and learned documents into memories, with a report."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select

from spud.core.messages import Message, untrusted_context
from spud.core.protocols import Model, SessionInfo
from spud.memory import generate
from spud.memory.retrieve import passage_block, recall
from spud.memory.score import f1
from spud.memory.store import Memory, MemoryStore, NewMemory
from spud.memory.tables import SleepRunRow, SleptRow
from spud.service.tables import SessionOwnerRow
from spud.store.models import utcnow

Progress = Callable[[str, int, int], None]  # (what, done, total)
DUPLICATE_COSINE = 0.92
PASS_F1 = 0.5
SELF_TESTS_PER_CHUNK = 2


class SelfTest(BaseModel):
    question: str
    answer: str
    before: float = 0.0
    after: float = 0.0


class SleepReport(BaseModel):
    """What one sleep learned and dropped, and the self-test scores before and after."""

    user_id: str
    org_id: str
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    sessions: int = 0
    documents: int = 0
    facts: list[str] = []
    superseded: list[str] = []
    episodes: list[str] = []
    skills: list[str] = []
    duplicates: int = 0
    dropped: list[str] = []
    self_tests: list[SelfTest] = []

    @property
    def score_before(self) -> float:
        tests = self.self_tests
        return sum(t.before for t in tests) / len(tests) if tests else 0.0

    @property
    def score_after(self) -> float:
        tests = self.self_tests
        return sum(t.after for t in tests) / len(tests) if tests else 0.0


def user_text(messages: list[Message]) -> str:
    """What the user wrote in a session (never tool output: that may be untrusted)."""
    said = [m.content for m in messages if m.role == "user" and m.kind != "format_error"]
    return "\n".join(f"User: {s}" for s in said if s.strip())


def episode(info: SessionInfo, messages: list[Message]) -> NewMemory:
    """A summary of a session: task, outcome, what was done."""
    calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
    used = sorted({c.name for c in calls if c.name != "finish"})
    files = sorted(
        {str(c.arguments.get("path")) for c in calls if c.name in ("write_file", "edit_file")}
    )
    parts = [f"Session on {info.created_at:%Y-%m-%d}: {info.task.strip()[:300]}"]
    parts.append(f"Outcome: {info.status} after {info.steps} steps.")
    if info.summary:
        parts.append(f"Result: {info.summary.strip()[:300]}")
    if used:
        parts.append(f"Tools used: {', '.join(used)}.")
    if files:
        parts.append(f"Files written: {', '.join(files)}.")
    data = {"session_id": info.id, "status": info.status, "steps": info.steps}
    return NewMemory(
        kind="episode",
        text=" ".join(parts),
        source=f"session:{info.id}",
        data=_marked(messages, data),
    )


def _marked(messages: list[Message], data: dict) -> dict:
    """Mark what is learned from a session that read outside content (its summary and steps
    may repeat a web page's words): recalled later as untrusted data."""
    return {**data, "untrusted": True} if untrusted_context(messages) is True else data


def _step(call_name: str, arguments: dict) -> str:
    detail = arguments.get("command") or arguments.get("path") or arguments.get("query") or ""
    first = (str(detail).strip().splitlines() or [""])[0]  # a script's heredoc is shown apart
    return f"{call_name} {first[:120]}".strip()


def skill(info: SessionInfo, messages: list[Message]) -> NewMemory | None:
    """A procedure from a finished session: when to use it, the steps that worked, pitfalls."""
    if info.status != "finished":
        return None
    results = {m.tool_call_id: m for m in messages if m.role == "tool"}
    steps, pitfalls = [], []
    for m in messages:
        for call in m.tool_calls if m.role == "assistant" else []:
            res = results.get(call.id)
            if call.name == "finish" or res is None:
                continue
            if res.meta.get("ok"):
                step = _step(call.name, call.arguments)
                if step not in steps:
                    steps.append(step)
            elif res.kind != "skipped":
                first = (res.content.strip().splitlines() or [""])[0][:160]
                pitfalls.append(f"{_step(call.name, call.arguments)} failed: {first}")
    if not steps:
        return None
    when = info.task.strip()[:300]
    data = {"when": when, "steps": steps[:8], "pitfalls": pitfalls[:3], **worked_example(messages)}
    return NewMemory(
        kind="skill",
        text=f"How to: {when}",
        source=f"session:{info.id}",
        data=_marked(messages, data),
    )


DRAFT_LABEL = "the reply that passed"


def worked_example(messages: list[Message], max_chars: int = 1600) -> dict[str, str]:
    """What made a run pass, to show the next task of its kind: the checks that passed and
    the longest of the last text written to a file (a fixed module) and the last draft that
    ran (the model's own reply with the script or the cells that passed)."""
    out: dict[str, str] = {}
    finish = next((m for m in reversed(messages) if m.role == "tool" and m.kind == "finish"), None)
    checks = (finish.meta.get("checks") if finish else None) or []
    passed = [str(c.get("name")) for c in checks if c.get("passed")]
    if passed:
        out["checked"] = "; ".join(passed)
    results = {m.tool_call_id: m for m in messages if m.role == "tool"}
    written: dict[str, str] = {}
    for m in messages:
        for call in m.tool_calls if m.role == "assistant" else []:
            res = results.get(call.id)
            if res is None or not res.meta.get("ok"):
                continue
            if m.meta.get("draft"):
                written[DRAFT_LABEL] = str(m.meta["draft"]).strip()
            if call.name == "write_file":
                written[str(call.arguments.get("path"))] = str(call.arguments.get("content", ""))
            elif call.name == "edit_file":
                path = str(call.arguments.get("path"))
                written[path] = f"(edit) {call.arguments.get('new', '')}"
    if written:
        path, text = max(written.items(), key=lambda kv: len(kv[1]))
        out["example"] = f"{path}:\n{text[:max_chars]}"
    return out


class Sleeper:
    """One user's sleep over one store, with a model for facts and self-tests."""

    def __init__(
        self,
        memories: MemoryStore,
        model: Model,
        user_id: str,
        org_id: str,
        progress: Progress | None = None,
        self_tests: int = SELF_TESTS_PER_CHUNK,
    ) -> None:
        self.memories, self.model = memories, model
        self.user_id, self.org_id = user_id, org_id
        self.progress = progress or (lambda what, done, total: None)
        self.tests_per_chunk = self_tests
        self.report = SleepReport(user_id=user_id, org_id=org_id)

    def run(self, session_ids: list[str] | None = None) -> SleepReport:
        """Read the sessions and documents not slept on yet; return (and store) the report."""
        sessions = self._sessions(session_ids)
        documents = self.memories.documents(self.user_id, self.org_id, unslept=True)
        chunks = {d.id: self.memories.chunks(d.id) for d in documents}
        total = len(sessions) + sum(len(c) for c in chunks.values())
        done = 0
        self.progress("sleeping", done, total)
        for info in sessions:
            self.progress(f"session {info.id[:8]}", done, total)
            self._session(info)
            done += 1
        for doc in documents:
            for chunk in chunks[doc.id]:
                self.progress(f"{doc.title[:30]} #{chunk.data.get('chunk', 1)}", done, total)
                self._chunk(chunk)
                done += 1
            self.memories.mark_document_slept(doc.id)
        self.report.sessions, self.report.documents = len(sessions), len(documents)
        self.report.finished_at = utcnow()
        self.progress("done", total, total)
        with self.memories.session.begin() as db:
            db.add(
                SleepRunRow(
                    user_id=self.user_id,
                    org_id=self.org_id,
                    started_at=self.report.started_at,
                    finished_at=self.report.finished_at,
                    report=self.report.model_dump_json(),
                )
            )
        return self.report

    def _sessions(self, session_ids: list[str] | None) -> list[SessionInfo]:
        with self.memories.session() as db:
            slept = set(
                db.scalars(
                    select(SleptRow.source).where(
                        SleptRow.user_id == self.user_id, SleptRow.org_id == self.org_id
                    )
                )
            )
        store = self.memories.sql
        if session_ids is not None:
            infos = [store.get_session(s) for s in session_ids]
        else:  # the sessions no server user owns: those are slept on for their owners only
            with self.memories.session() as db:
                owned = set(db.scalars(select(SessionOwnerRow.session_id)))
            infos = [i for i in store.list_sessions(limit=10_000) if i.id not in owned]
        fresh = [i for i in infos if f"session:{i.id}" not in slept and i.status != "running"]
        return sorted(fresh, key=lambda i: i.created_at)

    def _session(self, info: SessionInfo) -> None:
        messages = self.memories.sql.messages(info.id)
        items = [episode(info, messages)]
        learned = skill(info, messages)
        if learned:
            items.append(learned)
        for memory in self.memories.add_many(self.user_id, self.org_id, items):
            if memory.created_at < self.report.started_at:
                self.report.duplicates += 1
            elif memory.kind == "episode":
                self.report.episodes.append(f"[{memory.cite}] {memory.text[:120]}")
            else:
                self.report.skills.append(f"[{memory.cite}] {memory.text[:120]}")
        said = user_text(messages)
        if said:
            for key, statement in generate.session_facts(self.model, said):
                self._fact(NewMemory("fact", statement, key=key, source=f"session:{info.id}"))
        with self.memories.session.begin() as db:
            source = f"session:{info.id}"
            db.merge(SleptRow(user_id=self.user_id, org_id=self.org_id, source=source))

    def _fact(self, item: NewMemory) -> Memory | None:
        """Add a fact unless it repeats a current one; report what it replaced."""
        near = recall(self.memories, self.user_id, self.org_id, item.text, k=1, kinds={"fact"})
        if (
            near
            and near[0].dense >= DUPLICATE_COSINE
            and (not item.key or near[0].memory.key == item.key)
        ):
            self.report.duplicates += 1
            return None
        memory = self.memories.add(self.user_id, self.org_id, item)
        for old in self.memories.history(self.user_id, self.org_id, memory.id)[:1]:
            self.report.superseded.append(f"[{old.cite}] {old.text[:80]} → [{memory.cite}]")
        self.report.facts.append(f"[{memory.cite}] {memory.text[:120]}")
        return memory

    def _score(self, tests: list[tuple[str, str]]) -> list[float]:
        scores = []
        for question, truth in tests:
            hits = recall(self.memories, self.user_id, self.org_id, question, k=3)
            reply = generate.answer(self.model, question, passage_block(hits, 400))
            scores.append(f1(reply, truth))
        return scores

    def _chunk(self, chunk: Memory) -> None:
        """SEAL-style: write facts (the self-edit) and quiz questions; keep what helps."""
        tests = generate.self_tests(self.model, chunk.text, self.tests_per_chunk)
        before = self._score(tests)
        added = []
        for statement in generate.text_facts(self.model, chunk.text):
            memory = self._fact(NewMemory("fact", statement, source=chunk.source))
            if memory:
                added.append(memory)
        after = self._score(tests) if added else before
        if added and sum(after) < sum(before):  # the self-edit hurt: drop it
            for memory in added:
                self.memories.forget(self.user_id, self.org_id, memory.id)
                self.report.facts.remove(f"[{memory.cite}] {memory.text[:120]}")
                self.report.dropped.append(f"fact (hurt self-test): {memory.text[:100]}")
            after = before
        for (question, truth), b, a in zip(tests, before, after, strict=True):
            test = SelfTest(question=question, answer=truth, before=b, after=a)
            self.report.self_tests.append(test)
            if a >= PASS_F1:
                self.memories.add(
                    self.user_id,
                    self.org_id,
                    NewMemory(
                        "selftest",
                        f"Q: {question} A: {truth}",
                        source=chunk.source,
                        data={"question": question, "answer": truth},
                    ),
                )
            else:
                self.report.dropped.append(f"self-test it could not answer: {question[:100]}")


def last_report(memories: MemoryStore, user_id: str, org_id: str) -> SleepReport | None:
    with memories.session() as db:
        row = db.scalar(
            select(SleepRunRow)
            .where(SleepRunRow.user_id == user_id, SleepRunRow.org_id == org_id)
            .order_by(SleepRunRow.id.desc())
            .limit(1)
        )
    return SleepReport.model_validate(json.loads(row.report)) if row else None


def reports(memories: MemoryStore, user_id: str, org_id: str, limit: int = 10) -> list[SleepReport]:
    """The owner's latest sleep reports, newest first."""
    with memories.session() as db:
        rows = db.scalars(
            select(SleepRunRow)
            .where(SleepRunRow.user_id == user_id, SleepRunRow.org_id == org_id)
            .order_by(SleepRunRow.id.desc())
            .limit(limit)
        ).all()
    return [SleepReport.model_validate(json.loads(row.report)) for row in rows]
