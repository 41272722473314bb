"""Hybrid recall: FTS5/BM25 and dense vectors, fused by reciprocal rank, re-ranked, cited."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text

from spud.memory import pg_search
from spud.memory.store import Memory, MemoryStore

CANDIDATES = 50  # per leg
RRF_K = 60
RELEVANT_COSINE = 0.3
STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its me my of on "
    "or that the their this to was were what when where which who whom whose why will with you "
    "your".split()
)
_WORD = re.compile(r"\w+")


@dataclass
class Hit:
    """A recalled memory and why: its fused rank score and its final score."""

    memory: Memory
    score: float
    dense: float
    lexical_rank: int | None
    coverage: float = 0.0

    @property
    def relevant(self) -> bool:
        """Close in meaning, or holding most of the query's words."""
        return self.dense >= RELEVANT_COSINE or self.coverage >= 0.5


def terms(query: str) -> list[str]:
    """The query's content words (lower case, no stop words, no duplicates)."""
    words = [w for w in _WORD.findall(query.lower()) if w not in STOPWORDS]
    return list(dict.fromkeys(words))


def lexical(store: MemoryStore, user_id: str, org_id: str, query: str, limit: int) -> list[int]:
    """Memory ids ranked by BM25 over FTS5, or by PostgreSQL's full-text rank; any word matches."""
    words = terms(query)
    if store.sql.engine.dialect.name == "postgresql":
        return pg_search.lexical(store, user_id, org_id, words, limit)
    if not store.lexical or not words:
        return []
    match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
    sql = text(
        "SELECT m.id FROM memory_fts JOIN memories m ON m.id = memory_fts.rowid "
        "WHERE memory_fts MATCH :match AND m.user_id = :user AND m.org_id = :org "
        "AND m.superseded_by IS NULL ORDER BY bm25(memory_fts) LIMIT :limit"
    )
    with store.session() as db:
        rows = db.execute(sql, {"match": match, "user": user_id, "org": org_id, "limit": limit})
        return [r[0] for r in rows]


def dense(
    store: MemoryStore, user_id: str, org_id: str, query_vector: np.ndarray, limit: int
) -> list[tuple[int, float]]:
    """(memory id, cosine) of the nearest current memories."""
    index = store.vectors(user_id, org_id)
    if not len(index.ids):
        return []
    scores = index.matrix @ query_vector
    top = np.argpartition(-scores, min(limit, len(scores)) - 1)[:limit]
    top = top[np.argsort(-scores[top])]
    return [(int(index.ids[i]), float(scores[i])) for i in top]


def coverage(words: list[str], memory_text: str) -> float:
    """The share of the query's content words that the memory contains."""
    if not words:
        return 0.0
    have = set(_WORD.findall(memory_text.lower()))
    return sum(1 for w in words if w in have) / len(words)


def recall(
    store: MemoryStore,
    user_id: str,
    org_id: str,
    query: str,
    k: int = 5,
    kinds: set[str] | None = None,
    query_vector: np.ndarray | None = None,
) -> list[Hit]:
    """The k most relevant current memories of this user in this org.

    Both legs are fused with reciprocal rank fusion; the fused candidates are re-ranked by
    cosine similarity plus the share of query words they contain (exact names and numbers
    matter more than a dense vector shows).
    """
    if not query.strip():
        return []
    qvec = store.embedder.embed([query])[0] if query_vector is None else query_vector
    lex = lexical(store, user_id, org_id, query, CANDIDATES)
    near = dense(store, user_id, org_id, qvec, CANDIDATES)
    fused: dict[int, float] = {}
    for rank, mid in enumerate(lex):
        fused[mid] = fused.get(mid, 0.0) + 1 / (RRF_K + rank + 1)
    for rank, (mid, _) in enumerate(near):
        fused[mid] = fused.get(mid, 0.0) + 1 / (RRF_K + rank + 1)
    pool = sorted(fused, key=fused.__getitem__, reverse=True)[: max(4 * k, 20)]
    memories = store.get_many(pool)
    cosines = dict(near)
    words = terms(query)
    lex_rank = {mid: r for r, mid in enumerate(lex)}
    hits = []
    for mid in pool:
        memory = memories.get(mid)
        if memory is None or (kinds and memory.kind not in kinds):
            continue
        cos = cosines.get(mid)
        if cos is None:  # found by words only: score its vector too
            cos = _cosine(store, memory, qvec)
        share = coverage(words, memory.text)
        score = cos + 0.5 * share + 10 * fused[mid]
        hits.append(Hit(memory, score, cos, lex_rank.get(mid), share))
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits[:k]


def _cosine(store: MemoryStore, memory: Memory, qvec: np.ndarray) -> float:
    index = store.vectors(memory.user_id, memory.org_id)
    where = np.flatnonzero(index.ids == memory.id)
    return float(index.matrix[where[0]] @ qvec) if len(where) else 0.0


def estimate_tokens(text_: str) -> int:
    """About four characters per token: good enough to keep a budget without a tokenizer."""
    return len(text_) // 4 + 1


def render(memory: Memory) -> str:
    """One memory as a cited line (skills with their steps and pitfalls)."""
    when = f"{memory.created_at:%Y-%m-%d}"
    if memory.untrusted:  # learned from a web page: recalled as data, never instructions
        when += ", untrusted: from web content"
    if memory.kind == "skill":
        d = memory.data
        steps = " ".join(f"{i + 1}. {s}" for i, s in enumerate(d.get("steps", [])))
        pitfalls = "; ".join(d.get("pitfalls", []))
        body = f"skill for: {d.get('when', memory.text)}. Steps: {steps}"
        if pitfalls:
            body += f" Pitfalls: {pitfalls}"
        if d.get("checked"):
            body += f" It passed: {d['checked']}."
        if d.get("example"):
            body += f" Worked example, {d['example'].strip()}"
        return f"[{memory.cite}] ({when}) {body}"
    label = "from " + str(memory.data.get("title")) if memory.kind == "chunk" else memory.kind
    return f"[{memory.cite}] ({label}, {when}) {memory.text}"


def passage_block(hits: list[Hit], budget_tokens: int = 600) -> str:
    """Recalled texts for answering a question: plain, the most relevant last (nearest it)."""
    kept, used = [], 0
    for hit in hits:
        cost = estimate_tokens(hit.memory.text)
        if used + cost <= budget_tokens:
            kept.append(hit.memory.text)
            used += cost
    return "Text:\n" + "\n\n".join(reversed(kept)) if kept else ""


def context_block(hits: list[Hit], budget_tokens: int = 800) -> str:
    """Recalled memories as a prompt section within a token budget; '' when there are none."""
    header = "What you remember (cite a memory as [m<id>] when you use it; newer facts win):"
    lines, used = [], estimate_tokens(header)
    for hit in hits:
        line = render(hit.memory)
        cost = estimate_tokens(line)
        if used + cost > budget_tokens:
            continue
        lines.append(line)
        used += cost
    return "\n".join([header, *lines]) if lines else ""
