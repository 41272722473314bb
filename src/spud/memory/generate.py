"""Asking a model for structured output through the Model Protocol (a grammar on local models)."""

from __future__ import annotations

from typing import Any

from spud.core.errors import FormatError, ModelError
from spud.core.messages import Message
from spud.core.protocols import Model, ToolSpec

ANSWER_PROMPT = (
    "You answer questions with a short phrase copied from what you know or remember, "
    "never a full sentence."
)
FACTS_PROMPT = (
    "You read a text and list the facts it states, each one short sentence that makes sense "
    "on its own (name the subject; no 'it' or 'he')."
)
SESSION_FACTS_PROMPT = (
    "You read what a user wrote to an assistant and list lasting facts about the user, "
    "their preferences or their project. Each has a key (what it is about, e.g. "
    "'preferred language') and a statement. List nothing if there is nothing lasting."
)
QUESTIONS_PROMPT = (
    "You write quiz questions about a text, each answerable with a short phrase copied from "
    "the text."
)

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 120}},
    "required": ["answer"],
}
FACTS_SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {"type": "string", "maxLength": 240},
            "maxItems": 6,
        }
    },
    "required": ["facts"],
}
KEYED_FACTS_SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string", "maxLength": 60},
                    "statement": {"type": "string", "maxLength": 200},
                },
                "required": ["key", "statement"],
            },
            "maxItems": 5,
        }
    },
    "required": ["facts"],
}
QUESTIONS_SCHEMA = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string", "maxLength": 160},
                    "answer": {"type": "string", "maxLength": 80},
                },
                "required": ["question", "answer"],
            },
            "minItems": 1,
            "maxItems": 3,
        }
    },
    "required": ["questions"],
}


def structured(
    model: Model, system: str, user: str, name: str, schema: dict[str, Any]
) -> dict[str, Any] | None:
    """One reply shaped by schema (offered to the model as the only tool); None if it fails."""
    spec = ToolSpec(name=name, description=f"Give the {name}.", parameters=schema)
    messages = [Message(role="system", content=system), Message(role="user", content=user)]
    try:
        reply = model.complete(messages, [spec])
    except (FormatError, ModelError):
        return None
    calls = [c for c in reply.message.tool_calls if c.name == name]
    return calls[0].arguments if calls else None


def answer(model: Model, question: str, context: str = "") -> str:
    """A short answer to a question, with an optional context (memories or a passage)."""
    user = f"{context}\n\nQuestion: {question}" if context else f"Question: {question}"
    out = structured(model, ANSWER_PROMPT, user, "answer", ANSWER_SCHEMA)
    return str(out.get("answer", "")) if out else ""


def text_facts(model: Model, text: str) -> list[str]:
    out = structured(model, FACTS_PROMPT, f"Text:\n{text}", "facts", FACTS_SCHEMA)
    facts = out.get("facts", []) if out else []
    return [f.strip() for f in facts if isinstance(f, str) and len(f.split()) >= 3]


def session_facts(model: Model, user_text: str) -> list[tuple[str, str]]:
    out = structured(model, SESSION_FACTS_PROMPT, user_text, "facts", KEYED_FACTS_SCHEMA)
    facts = out.get("facts", []) if out else []
    return [
        (str(f["key"]).strip(), str(f["statement"]).strip())
        for f in facts
        if isinstance(f, dict) and str(f.get("statement", "")).strip()
    ]


def self_tests(model: Model, text: str) -> list[tuple[str, str]]:
    out = structured(model, QUESTIONS_PROMPT, f"Text:\n{text}", "questions", QUESTIONS_SCHEMA)
    pairs = out.get("questions", []) if out else []
    return [
        (str(p["question"]).strip(), str(p["answer"]).strip())
        for p in pairs
        if isinstance(p, dict) and str(p.get("question", "")).strip() and p.get("answer")
    ]
