"""Memory on real SQLite and the real MiniLM embedder: owners, supersede, forget, recall, learn."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from spud.core.agent import Agent
from spud.core.errors import SpudError
from spud.memory.learn import chunk_text, learn
from spud.memory.retrieve import context_block, recall
from spud.memory.store import MemoryStore, NewMemory
from spud.memory.tools import memory_tools
from spud.models.replay import ReplayModel
from spud.store.models import Base
from spud.store.sql import SqlStore


@pytest.fixture
def memories(store: SqlStore) -> MemoryStore:
    return MemoryStore(store)


def fact(text: str, key: str = "", kind: str = "fact") -> NewMemory:
    return NewMemory(kind=kind, text=text, key=key, source="test")


@pytest.mark.databases
def test_memories_are_isolated_per_user_and_org(memories: MemoryStore):
    secret = memories.add("ann", "acme", fact("Ann's locker code at Acme is 4711"))
    memories.add("ann", "globex", fact("Ann's locker code at Globex is 1234"))
    memories.add("bob", "acme", fact("Bob's locker code at Acme is 9999"))

    for user, org, code in (
        ("ann", "acme", "4711"),
        ("ann", "globex", "1234"),
        ("bob", "acme", "9999"),
    ):
        found = recall(memories, user, org, "what is the locker code", k=10)
        assert [h.memory.text[-4:] for h in found] == [code]
        assert [m.text[-4:] for m in memories.list(user, org)] == [code]
    assert recall(memories, "eve", "acme", "locker code") == []

    for user, org in (("bob", "acme"), ("ann", "globex")):  # another owner's id does not exist
        with pytest.raises(SpudError, match=f"no memory m{secret.id}"):
            memories.get(user, org, secret.id)
        with pytest.raises(SpudError, match="no memory"):
            memories.forget(user, org, secret.id)
        with pytest.raises(SpudError, match="no memory"):
            memories.edit(user, org, secret.id, "hacked")
    assert memories.get("ann", "acme", secret.id).text.endswith("4711")
    with pytest.raises(SpudError, match="user and an organisation"):
        memories.list("", "acme")


@pytest.mark.databases
def test_a_superseded_fact_is_history_not_current(memories: MemoryStore):
    old = memories.add("u", "o", fact("The user's editor is vim", key="Editor", kind="preference"))
    new = memories.add(
        "u", "o", fact("The user's editor is emacs", key="editor", kind="preference")
    )
    hits = recall(memories, "u", "o", "which editor does the user use, vim or emacs?", k=5)
    assert [h.memory.id for h in hits] == [new.id]
    assert "vim" not in context_block(hits)
    assert [m.id for m in memories.history("u", "o", new.id)] == [old.id]
    everything = memories.list("u", "o", history=True)
    assert {m.id: m.superseded_by for m in everything} == {new.id: None, old.id: new.id}
    # Saying the same thing again is not a new memory.
    again = memories.add(
        "u", "o", fact("the user's editor is Emacs.", key="editor", kind="preference")
    )
    assert again.id == new.id and memories.count("u", "o") == 1


def test_forget_deletes_row_vector_text_index_and_history(memories: MemoryStore, tmp_path: Path):
    old = memories.add("u", "o", fact("The alarm code is zanzibar-old", key="alarm code"))
    new = memories.add("u", "o", fact("The alarm code is zanzibar-new", key="alarm code"))
    plant = memories.add("u", "o", fact("The office plant is called Fernando"))
    assert recall(memories, "u", "o", "alarm code zanzibar")[0].memory.id == new.id
    with memories.sql.engine.connect() as conn:
        blobs = [r[0] for r in conn.exec_driver_sql("SELECT vector FROM memories WHERE id < 3")]
    assert len(blobs) == 2 and list((tmp_path / "spud.vectors").glob("*.hnsw"))

    assert sorted(memories.forget("u", "o", new.id)) == sorted([new.id, old.id])

    assert all(
        "zanzibar" not in h.memory.text for h in recall(memories, "u", "o", "zanzibar alarm")
    )
    with memories.sql.engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'zanzibar'"
            ).scalar()
            == 0
        )
        assert conn.exec_driver_sql("SELECT count(*) FROM memories").scalar() == 1
    near = np.frombuffer(blobs[1], dtype=np.float32)
    assert [i for i, _ in memories.index.search("u", "o", near, 10)] == [plant.id]
    memories.sql.close()
    for path in tmp_path.glob("spud.db*"):  # not merely unlinked: gone from the files
        assert b"zanzibar" not in path.read_bytes(), path.name
    for path in (tmp_path / "spud.vectors").iterdir():  # nor kept by the vector index
        assert not any(blob in path.read_bytes() for blob in blobs), path.name


def test_planted_fact_is_found_among_10k_distractors(memories: MemoryStore):
    rng = random.Random(7)
    cities = ["Lisbon", "Porto", "Madrid", "Oslo", "Lyon", "Turin", "Ghent", "Cork", "Graz", "Bern"]
    things = ["wifi password", "door code", "printer name", "meeting room", "parking spot"]
    people = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jude"]
    verbs = ["moved to", "asked about", "prefers", "booked", "cancelled", "reviewed"]
    distractors = set()  # hard negatives: other offices' passwords, Lisbon's other codes
    while len(distractors) < 10_000:
        thing, city = rng.choice(things), rng.choice(cities)
        if (thing, city) == ("wifi password", "Lisbon"):
            continue  # the planted fact is the only answer there is
        distractors.add(
            rng.choice(
                [
                    f"The {thing} at the {city} office is "
                    f"{rng.choice(['blue', 'red', 'oak', 'pine', 'delta'])}-{rng.randint(1, 999)}",
                    f"{rng.choice(people)} {rng.choice(verbs)} the {thing} in {city} "
                    f"on day {rng.randint(1, 365)}",
                ]
            )
        )
    items = [fact(t) for t in sorted(distractors)]
    planted_at = rng.randrange(len(items))
    items.insert(planted_at, fact("The wifi password at the Lisbon office is tangerine-42"))
    added = memories.add_many("u", "o", items)
    planted = added[planted_at]
    assert memories.count("u", "o") == 10_001

    for query in ("What is the wifi password at the Lisbon office?", "tangerine-42"):
        hits = recall(memories, "u", "o", query, k=1)
        assert hits[0].memory.id == planted.id, [h.memory.text for h in hits]


@pytest.mark.databases
def test_learn_chunks_files_with_provenance_once(memories: MemoryStore, tmp_path: Path):
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (docs / "onboarding.md").write_text(
        "# Onboarding\n\nNew staff get a badge from Mirela at reception.\n\n"
        + "\n\n".join(f"Paragraph {i}: " + "details " * 60 for i in range(6))
    )
    (docs / "notes.txt").write_text("The quarterly review is on the first Monday of March.")
    (docs / "image.png").write_bytes(b"\x89PNG")

    learned = learn(memories, "u", "o", str(docs))
    assert [Path(x.source).name for x in learned] == ["notes.txt", "onboarding.md"]
    assert all(x.new for x in learned) and learned[1].chunks > 1
    chunks = memories.list("u", "o", kind="chunk")
    assert all(len(c.text) <= 1200 for c in chunks)
    assert {c.source.rsplit("#", 1)[0] for c in chunks} == {x.source for x in learned}
    hit = recall(memories, "u", "o", "who hands out badges to new staff?", k=1)[0]
    assert "Mirela" in hit.memory.text and hit.memory.source.endswith("onboarding.md#1")

    again = learn(memories, "u", "o", str(docs / "notes.txt"))
    assert not again[0].new and len(memories.list("u", "o", kind="chunk")) == len(chunks)
    with pytest.raises(SpudError, match="nothing to learn"):
        learn(memories, "u", "o", str(tmp_path / "missing.pdf"))
    with pytest.raises(SpudError, match="no files Spud can read"):
        (tmp_path / "empty").mkdir()
        learn(memories, "u", "o", str(tmp_path / "empty"))


def test_chunking_keeps_every_word():
    text = "First para.\n\n" + "A long sentence here. " * 200 + "\n\nLast para."
    chunks = chunk_text(text, size=300)
    assert all(len(c) <= 300 for c in chunks)
    assert " ".join(chunks).split() == text.split()


@pytest.mark.databases
def test_bad_input_is_a_clear_error_and_loses_nothing(memories: MemoryStore):
    kept = memories.add("u", "o", fact("Keep me"))
    with pytest.raises(SpudError, match="unknown memory kind"):
        memories.add("u", "o", NewMemory(kind="gossip", text="x"))
    with pytest.raises(SpudError, match="needs some text"):
        memories.add("u", "o", fact("   "))
    with pytest.raises(SpudError, match="needs some text"):
        memories.edit("u", "o", kept.id, "")
    assert [m.text for m in memories.list("u", "o")] == ["Keep me"]


def test_edit_changes_what_is_recalled(memories: MemoryStore):
    m = memories.add("u", "o", fact("The standup is at 9:00 in room Alpha"))
    memories.edit("u", "o", m.id, "The standup is at 10:30 in room Omega")
    hit = recall(memories, "u", "o", "where is the standup? room Omega", k=1)[0]
    assert hit.memory.id == m.id and "Omega" in hit.memory.text
    with memories.sql.engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'Alpha'"
            ).scalar()
            == 0
        )


@pytest.mark.databases
def test_agent_remembers_recalls_and_forgets(store: SqlStore, memories: MemoryStore):
    calls = [
        {
            "calls": [
                {
                    "name": "remember",
                    "arguments": {"text": "The user's cat is called Miso", "key": "cat's name"},
                }
            ]
        },
        {"calls": [{"name": "recall", "arguments": {"query": "what is the cat called"}}]},
        {"calls": [{"name": "forget", "arguments": {"memory_id": "m1"}}]},
        {"calls": [{"name": "forget", "arguments": {"memory_id": "cat"}}]},
        {"calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
    ]
    agent = Agent(ReplayModel(calls), memory_tools(memories, "u", "o"), store)
    sid = agent.start("remember my cat", "/w")
    assert agent.run(sid).status == "finished"
    outputs = [m.content for m in store.messages(sid) if m.role == "tool"]
    assert outputs[0] == "remembered as [m1]"
    assert "[m1]" in outputs[1] and "Miso" in outputs[1]
    assert outputs[2] == "forgot m1"
    assert "not a memory id" in outputs[3]
    assert memories.list("u", "o", history=True) == []


def test_memory_tables_match_the_migration(store: SqlStore):
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    sqlite_only = ("memory_fts", "memory_vector_log")  # made by the migration's raw SQL
    mine = [d for d in diffs if "memor" in str(d) and not any(t in str(d) for t in sqlite_only)]
    assert mine == []


@pytest.mark.databases
def test_only_the_closest_skill_shows_its_worked_example(memories: MemoryStore):
    def skill(task: str, code: str) -> NewMemory:
        data = {"when": task, "steps": ["bash python3 convert.py"], "example": code}
        return NewMemory(kind="skill", text=f"How to: {task}", source="test", data=data)

    memories.add("u", "o", skill("Convert books.csv into books.json", "rows = list(books)"))
    memories.add(
        "u", "o", skill("Convert sensor readings into a JSON file", "json.dumps(r) for r in rows")
    )
    hits = recall(memories, "u", "o", "Convert plants.csv into plants.json", k=5)
    assert [h.memory.data["when"][:13] for h in hits] == ["Convert books", "Convert senso"]
    block = context_block(hits)
    assert "rows = list(books)" in block  # the closest skill's example
    assert "json.dumps" not in block  # the other's steps only
    assert block.count("Steps: 1. bash python3 convert.py") == 2
