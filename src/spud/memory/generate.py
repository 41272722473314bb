"""Asking a model for short texts (answers, facts, quiz questions) and parsing them line by line."""

from __future__ import annotations

import re

from spud.core.errors import FormatError, ModelError
from spud.core.messages import Message
from spud.core.protocols import Model
from spud.memory.store import normalize

ANSWER_PROMPT = (
    "You answer questions with a short phrase copied from what you know or remember, "
    "never a full sentence."
)
FACTS_PROMPT = (
    "You list the facts a text states, one per line. Each is one short sentence that names "
    "its subject (no 'it', 'he' or 'they')."
)
SESSION_FACTS_PROMPT = (
    "You read what a user wrote to an assistant and list lasting facts about the user, their "
    "preferences or their project, one per line as a topic, a colon, then a sentence. "
    "Write 'none' if there is nothing lasting."
)
QUESTIONS_PROMPT = (
    "You write quiz questions about a text, each answerable with a short phrase copied from "
    "the text. Write each as two lines: 'Q: question' then 'A: answer'."
)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def text(model: Model, system: str, user: str, max_tokens: int = 200) -> str:
    """The model's plain-text reply ('' if it fails); llama.cpp models decode without a grammar."""
    llm = getattr(model, "llm", None)
    if llm is not None:  # an embedded model: ChatML, greedy, no tools in the prompt
        prompt = (
            f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        out = llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, stop=["<|im_end|>", "<|im_start|>"]
        )
        return str(out["choices"][0]["text"]).strip()
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    try:
        return model.complete(messages, []).message.content.strip()
    except (FormatError, ModelError):
        return ""


def lines(reply: str) -> list[str]:
    """Non-empty lines without bullets or numbering."""
    return [_BULLET.sub("", line).strip() for line in reply.splitlines() if line.strip()]


def answer(model: Model, question: str, context: str = "") -> str:
    """A short answer to a question, with an optional context (memories or a passage)."""
    user = f"{context}\n\nQuestion: {question}" if context else f"Question: {question}"
    found = lines(text(model, ANSWER_PROMPT, user, max_tokens=32))
    return found[0].removeprefix("Answer:").strip().strip("[]").rstrip(".").strip() if found else ""


def text_facts(model: Model, passage: str, limit: int = 6) -> list[str]:
    """Facts a text states, as sentences (the self-edit)."""
    reply = text(model, FACTS_PROMPT, f"Text:\n{passage}", max_tokens=160)
    copied = {normalize(s) for s in sentences(passage)}
    facts = [
        s
        for line in lines(reply)
        for s in sentences(line)
        if 4 <= len(s.split()) <= 40 and normalize(s) not in copied  # a copy adds nothing
    ]
    return list(dict.fromkeys(facts))[:limit]


def sentences(text_: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text_) if s.strip()]


def session_facts(model: Model, user_text: str, limit: int = 5) -> list[tuple[str, str]]:
    """(topic, statement) pairs the user stated."""
    found = []
    for line in lines(text(model, SESSION_FACTS_PROMPT, user_text, max_tokens=160)):
        topic, sep, statement = line.partition(":")
        if sep and topic.strip() and len(statement.split()) >= 3 and len(topic) <= 60:
            found.append((topic.strip(), statement.strip()))
    return found[:limit]


def self_tests(model: Model, passage: str, limit: int = 3) -> list[tuple[str, str]]:
    """(question, answer) pairs about a text, written by the model."""
    pairs, question = [], ""
    for line in lines(text(model, QUESTIONS_PROMPT, f"Text:\n{passage}", max_tokens=40 * limit)):
        if line[:2].upper() == "Q:":
            question = line[2:].strip()
        elif line[:2].upper() == "A:" and question:
            reply = line[2:].strip()
            if reply:
                pairs.append((question, reply))
            question = ""
    return pairs[:limit]
