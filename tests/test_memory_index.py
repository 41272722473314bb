"""The HNSW vector index beside SQLite: finds, forgets for good, survives crashes, follows
other processes; and recall's ranking (rare words, names, one source not filling the list)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from spud.memory import retrieve
from spud.memory.hnsw import HnswIndex
from spud.memory.rank import SIMILARITY, Candidate, Ranking, rank
from spud.memory.retrieve import recall
from spud.memory.store import MemoryStore, NewMemory
from spud.store.sql import SqlStore

N = 400


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def filled(store: SqlStore) -> tuple[MemoryStore, list[int], np.ndarray]:
    """N memories with known (random) vectors: nothing is embedded by a model."""
    vectors = unit(np.random.default_rng(3), N)
    memories = MemoryStore(store)
    items = [NewMemory("fact", f"note number {i} about topic {i % 7}") for i in range(N)]
    ids = [m.id for m in memories.add_many("u", "o", items, vectors)]
    return memories, ids, vectors


def index_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spud.vectors").glob("*"))


def nearest(memories: MemoryStore, vector: np.ndarray, k: int = 5) -> list[int]:
    return [i for i, _ in memories.index.search("u", "o", vector, k)]


def test_the_index_is_hnsw_in_a_file_beside_the_database_and_finds_the_planted_fact(
    filled, tmp_path: Path
):
    memories, ids, vectors = filled
    assert isinstance(memories.index, HnswIndex)
    planted = memories.add("u", "o", NewMemory("fact", "The vault code is 8812"))
    query = memories.embedder.embed(["what is the vault code?"])[0]
    hits = recall(memories, "u", "o", "what is the vault code?", k=3, query_vector=query)
    assert hits[0].memory.id == planted.id
    found = [i for i, _ in memories.index.search("u", "o", vectors[17], 5)]
    assert found[0] == ids[17]
    assert sorted(p.suffix for p in index_files(tmp_path)) == [".hnsw", ".lock", ".npy"]
    assert memories.index.search("someone", "else", vectors[17], 5) == []


def test_a_forgotten_memory_never_comes_back_from_the_index(filled, tmp_path: Path):
    memories, ids, vectors = filled
    assert nearest(memories, vectors[5])[0] == ids[5]  # built and saved with it
    secret = vectors[5].tobytes()
    assert any(secret in p.read_bytes() for p in index_files(tmp_path))

    memories.forget("u", "o", ids[5])

    assert ids[5] not in nearest(memories, vectors[5], 50)
    assert not any(secret in p.read_bytes() for p in index_files(tmp_path))  # files rewritten
    graph = memories.index._graphs[("u", "o")].graph
    stored = np.asarray(graph.get_items(ids[:5] + ids[6:], return_type="numpy"))
    assert len(stored) == N - 1 and not np.isclose(stored @ vectors[5], 1.0).any()
    again = MemoryStore(memories.sql)  # another process: loads the rewritten file
    assert ids[5] not in [i for i, _ in again.index.search("u", "o", vectors[5], 50)]


def test_forgetting_a_memory_added_after_the_last_save_rewrites_nothing(filled, tmp_path: Path):
    memories, ids, vectors = filled
    nearest(memories, vectors[0])
    saved = {p: p.stat().st_mtime_ns for p in index_files(tmp_path)}
    fresh = unit(np.random.default_rng(9), 1)
    late = memories.add_many("u", "o", [NewMemory("fact", "added late")], fresh)[0]
    assert nearest(memories, fresh[0])[0] == late.id
    memories.forget("u", "o", late.id)
    assert late.id not in nearest(memories, fresh[0], 50)
    assert {p: p.stat().st_mtime_ns for p in index_files(tmp_path)} == saved


def test_the_index_is_rebuilt_when_its_file_is_gone_or_broken(filled, tmp_path: Path, caplog):
    memories, ids, vectors = filled
    nearest(memories, vectors[0])
    (graph_file,) = (p for p in index_files(tmp_path) if p.suffix == ".hnsw")

    graph_file.unlink()  # deleted
    reopened = MemoryStore(memories.sql)
    assert nearest(reopened, vectors[42])[0] == ids[42]
    assert graph_file.exists()  # saved again

    # A crash mid-write leaves a temporary file; a newer graph that does not load is skipped.
    (graph_file.parent / f"{graph_file.stem}.999.tmp2").write_bytes(b"half a graph")
    broken = graph_file.parent / f"{graph_file.name.split('.')[0]}.99999.hnsw"
    broken.write_bytes(graph_file.read_bytes()[:5000])
    broken.with_suffix(".npy").write_bytes(graph_file.with_suffix(".npy").read_bytes())
    with caplog.at_level("WARNING", logger="spud.memory.hnsw"):
        reopened = MemoryStore(memories.sql)
        assert nearest(reopened, vectors[7])[0] == ids[7]
    assert "does not load" in caplog.text and not broken.exists()
    assert sorted(reopened.index._graphs[("u", "o")].live) == sorted(ids)


def test_the_index_follows_changes_made_by_another_process(filled):
    memories, ids, vectors = filled
    assert nearest(memories, vectors[3])[0] == ids[3]
    other = MemoryStore(SqlStore(memories.sql.url))  # its own connections and index
    fresh = unit(np.random.default_rng(11), 2)
    added = other.add_many("u", "o", [NewMemory("fact", "from elsewhere")], fresh[:1])[0]
    other.forget("u", "o", ids[3])
    with other.sql.engine.begin() as conn:  # an edit: a new vector for the same memory
        conn.exec_driver_sql(
            "UPDATE memories SET vector = ? WHERE id = ?", (fresh[1].tobytes(), ids[4])
        )
    assert nearest(memories, fresh[0])[0] == added.id
    assert ids[3] not in nearest(memories, vectors[3], 50)
    assert nearest(memories, fresh[1])[0] == ids[4]
    other.sql.close()


def test_superseded_memories_leave_the_index(store: SqlStore):
    memories = MemoryStore(store)
    vectors = unit(np.random.default_rng(5), 2)
    old = memories.add_many("u", "o", [NewMemory("fact", "desk is 4", key="desk")], vectors[:1])
    new = memories.add_many("u", "o", [NewMemory("fact", "desk is 9", key="desk")], vectors[1:])
    assert nearest(memories, vectors[0], 5) == [new[0].id] != [old[0].id]


def candidate(i: int, text: str, source: str, cosine: float, fused: float = 0.01) -> Candidate:
    return Candidate(i, text, source, datetime(2026, 1, 1) + timedelta(days=i), cosine, fused)


def test_one_source_does_not_fill_the_list():
    same_topic = [
        candidate(1, "The Normans conquered England in 1066.", "doc:later#1", 0.80),
        candidate(2, "Normans won the battle of Hastings.", "doc:later#1", 0.79),
        candidate(3, "Q: when did the Normans land? A: 1066", "doc:later#1", 0.78),
        candidate(4, "Rollo's Normans settled in Normandy around 911.", "doc:first#1", 0.55),
    ]
    question = "When did the Normans settle in Normandy?"
    assert 4 not in [c.id for c, _, _ in rank(question, same_topic, 3, SIMILARITY)]
    diverse = Ranking(same_source=0.2)
    assert [c.id for c, _, _ in rank(question, same_topic, 3, diverse)][:2] == [1, 4]
    # Facts the user had remembered are each their own source.
    remembered = [candidate(i, f"fact {i}", "tool:remember", 0.9 - i / 100) for i in (1, 2, 3)]
    remembered.append(candidate(4, "fact 4", "doc:x#1", 0.8))
    assert [c.id for c, _, _ in rank("fact", remembered, 3, diverse)] == [1, 2, 3]


def test_a_margin_leaves_out_hits_far_below_the_best():
    found = [
        candidate(1, "Rollo's Normans settled in Normandy around 911.", "doc:a#1", 0.80),
        candidate(2, "Normandy lies in the north of France.", "doc:b#1", 0.78),
        candidate(3, "The Normans conquered England in 1066.", "doc:c#1", 0.40),
    ]
    question = "When did the Normans settle in Normandy?"
    assert [c.id for c, _, _ in rank(question, found, 3, SIMILARITY)] == [1, 2, 3]
    near = [c.id for c, _, _ in rank(question, found, 3, Ranking(margin=0.2))]
    assert near == [1, 2]  # 3 scores far below the best: left out
    assert [c.id for c, _, _ in rank(question, found, 3, Ranking(same_source=0.2, margin=0.2))] == [
        1,
        2,
    ]


def test_a_later_passage_on_the_topic_leaves_a_questions_hits_as_they_were_near_the_best():
    """Day 1: the right passage and a weaker one. Later: another passage on the topic, with
    the fact and self-test a sleep made of it. Near the best, the question's hits stay day 1's
    (the answer's context does not change); without a margin the later passage joins them."""
    question = "When did Rollo's Normans settle in Normandy?"
    day1 = [
        candidate(1, "Rollo's Normans settled in Normandy around 911.", "doc:a#1", 0.80),
        candidate(2, "The Normans spoke a Romance language.", "doc:b#1", 0.52),
    ]
    later = [
        candidate(10, "The Normans settled in England after 1066.", "doc:z#1", 0.70),
        candidate(11, "Normans settled England in 1066.", "doc:z#1", 0.69),
        candidate(12, "Q: When did the Normans settle in England? A: 1066", "doc:z#1", 0.68),
    ]
    near = Ranking(same_source=0.2, margin=0.05)
    first = [c.id for c, _, _ in rank(question, day1, 3, near)]
    assert first == [1] == [c.id for c, _, _ in rank(question, day1 + later, 3, near)]
    plain = [c.id for c, _, _ in rank(question, day1 + later, 3, Ranking(same_source=0.2))]
    assert plain[0] == 1 and {10, 11, 12} & set(plain)  # without a margin the later one joins


def test_rare_words_and_names_outweigh_common_ones():
    candidates = [
        candidate(1, "Tesla worked for Edison in New York in 1884.", "a", 0.62),
        candidate(2, "Tesla moved to New York and worked on motors.", "b", 0.75),
        candidate(3, "Tesla demonstrated motors in New York.", "c", 0.64),
    ]
    question = "Who did Tesla work for in New York in 1884?"
    assert rank(question, candidates, 1, SIMILARITY)[0][0].id == 2
    assert rank(question, candidates, 1, Ranking(rare=0.5, names=0.5))[0][0].id == 1


def test_words_many_memories_hold_leave_the_bm25_query(store: SqlStore, monkeypatch):
    """A word held by more than POSTINGS memories is not scored by BM25; the memories that
    hold every word of the query come first instead, and rare words are still ranked."""
    cities = ["Porto", "Oslo", "Lyon", "Cork"]
    texts = [f"The wifi password at the {c} office is code-{i}" for i in range(12) for c in cities]
    texts += [f"Lisbon office moved to floor {i}" for i in range(6)]
    texts.append("The wifi password at the Lisbon office is tangerine-42")
    memories = MemoryStore(store)
    ids = [m.id for m in memories.add_many("u", "o", [NewMemory("fact", t) for t in texts],
                                             unit(np.random.default_rng(5), len(texts)))]  # fmt: skip
    planted, question = ids[-1], "What is the wifi password at the Lisbon office?"
    plain = retrieve.lexical(memories, "u", "o", question, 10)  # BM25 over every word
    assert plain.index(planted) > 0  # the shorter Lisbon notes come first
    monkeypatch.setattr(retrieve, "POSTINGS", 10)
    with store.engine.connect() as conn:
        assert retrieve.selective(conn, ["wifi", "lisbon", "tangerine", "office"]) == [
            "tangerine",
            "lisbon",
        ]
        assert retrieve.selective(conn, ["wifi", "office"]) == []
        monkeypatch.setattr(retrieve, "POSTINGS", 50)  # 49 + 49 rows, but the same 49
        assert retrieve.selective(conn, ["wifi", "password"]) == ["wifi", "password"]
        monkeypatch.setattr(retrieve, "POSTINGS", 10)
    assert retrieve.lexical(memories, "u", "o", question, 5)[0] == planted  # every word
    assert retrieve.lexical(memories, "u", "o", "tangerine wifi", 5) == [planted]
    floors = retrieve.lexical(memories, "u", "o", "which floor is the Lisbon office on?", 8)
    assert set(floors[:6]) == set(ids[-7:-1])
    newest = [ids[-1], *ids[47:43:-1]]  # the planted fact, then the last wifi passwords
    assert retrieve.lexical(memories, "u", "o", "office wifi", 5) == newest
    assert retrieve.lexical(memories, "someone", "else", question, 5) == []
    mango = NewMemory("fact", "The wifi password at the Lisbon office is mango-7")
    (other,) = memories.add_many("v", "o", [mango], unit(np.random.default_rng(6), 1))
    assert retrieve.lexical(memories, "v", "o", question, 5) == [other.id]
    assert retrieve.lexical(memories, "u", "o", question, 5)[0] == planted
