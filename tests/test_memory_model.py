"""Sleep and recall with the real embedded model: a SQuAD passage learned, answered the next day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spud.config import Settings
from spud.memory import generate
from spud.memory.learn import learn_text
from spud.memory.retrieve import passage_block, recall
from spud.memory.score import f1
from spud.memory.sleep import Sleeper
from spud.memory.store import MemoryStore
from spud.models.loader import load_model
from spud.store.sql import SqlStore

pytestmark = pytest.mark.model
SAMPLE = Path(__file__).parent / "data" / "squad_sample.json"


def test_sleep_on_a_passage_then_answer_from_memory(tmp_path: Path):
    passages = json.loads(SAMPLE.read_text())
    settings = Settings(home=tmp_path, context_window=4096)
    model = load_model("qwen2.5-coder-0.5b", settings)
    memories = MemoryStore(SqlStore(settings.database_url))
    learn_text(memories, "u", "o", passages[0]["context"], "squad:0", passages[0]["title"])
    report = Sleeper(memories, model, "u", "o", self_tests=1).run(session_ids=[])
    assert report.documents == 1
    assert report.self_tests, "the model wrote no self-test questions"
    kept = memories.list("u", "o", kind="selftest")
    assert len(kept) == sum(t.after >= 0.5 for t in report.self_tests)

    for i, p in enumerate(passages[1:], start=1):  # more Super Bowl 50 passages, to tell apart
        learn_text(memories, "u", "o", p["context"], f"squad:{i}", p["title"])
    question = "Which NFL team won Super Bowl 50?"
    hits = recall(memories, "u", "o", question, k=3)
    assert "squad:0#1" in [h.memory.source for h in hits]
    reply = generate.answer(model, question, passage_block(hits))
    assert f1(reply, "Denver Broncos") > 0, reply
