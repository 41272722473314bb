"""Text helpers for the blog engine: slugs, identifiers, excerpts and initials."""

import re
import unicodedata

PARTICLES = {"van", "von", "de", "da"}


def slugify(title):
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))


def snake_case(name):
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z])([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"[-\s]+", "_", name)
    return re.sub(r"_+", "_", name).strip("_").lower()


def camel_case(name):
    words = [w for w in re.split(r"[_\-\s]+", name) if w]
    if not words:
        return ""
    return words[0].lower() + "".join(w.capitalize() for w in words[1:])


def excerpt(text, limit):
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    kept = ""
    for word in text.split(" "):
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + 3 > limit:
            break
        kept = candidate
    if not kept:
        return text[: max(limit - 3, 0)] + "..."
    return kept + "..."


def initials(full_name):
    parts = [p for word in full_name.split() if word not in PARTICLES for p in word.split("-")]
    return "".join(p[0].upper() + "." for p in parts if p)
