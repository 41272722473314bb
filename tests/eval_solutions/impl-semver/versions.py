"""Semantic versions: parse, order, bump and match against simple range specs."""

import re
from functools import cmp_to_key
from typing import NamedTuple

PATTERN = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?"
)


class Version(NamedTuple):
    major: int
    minor: int
    patch: int
    pre: tuple = ()  # pre-release identifiers: ints and strs, e.g. ("rc", 1)

    def __str__(self):
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + ("-" + ".".join(map(str, self.pre)) if self.pre else "")


def parse(text):
    m = PATTERN.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a version: {text!r}")
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre)


def _cmp(x, y):
    return (x > y) - (x < y)


def _compare(a, b):
    core = _cmp(a[:3], b[:3])
    if core or a.pre == b.pre:
        return core
    if not a.pre or not b.pre:
        return 1 if not a.pre else -1
    for p, q in zip(a.pre, b.pre, strict=False):
        if p == q:
            continue
        if isinstance(p, int) != isinstance(q, int):
            return -1 if isinstance(p, int) else 1
        return _cmp(p, q)
    return _cmp(len(a.pre), len(b.pre))


def compare(a, b):
    return _compare(parse(a), parse(b))


def bump(text, part):
    v = parse(text)
    if part == "major":
        return str(Version(v.major + 1, 0, 0))
    if part == "minor":
        return str(Version(v.major, v.minor + 1, 0))
    if part == "patch":
        return str(Version(v.major, v.minor, v.patch + 1))
    raise ValueError(f"unknown part {part!r}")


def _holds(v, cond):
    m = re.fullmatch(r"\s*(>=|<=|==|>|<|\^|~)\s*(\S+)\s*", cond)
    if not m:
        raise ValueError(f"bad condition {cond!r}")
    op, w = m.group(1), parse(m.group(2))
    c = _compare(v, w)
    if op == "^":
        same = v.major == w.major and (w.major != 0 or v.minor == w.minor)
        return same and c >= 0
    if op == "~":
        return v.major == w.major and v.minor == w.minor and c >= 0
    return {">=": c >= 0, "<=": c <= 0, "==": c == 0, ">": c > 0, "<": c < 0}[op]


def satisfies(text, spec):
    v = parse(text)
    return all(_holds(v, cond) for cond in spec.split(","))


def max_satisfying(texts, spec):
    ok = [t for t in texts if satisfies(t, spec)]
    return max(ok, key=cmp_to_key(compare)) if ok else None
