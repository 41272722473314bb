"""Durations written by people ('1h30m', '2d 4h', '90') to seconds and back."""

import re

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
PART = re.compile(r"\s*(\d+)([dhms])", re.IGNORECASE)


def parse_duration(text):
    """The number of seconds text stands for, as an int; ValueError if it is not a duration."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    order = list(UNITS)
    pos, last, seconds = 0, -1, 0
    while pos < len(text):
        match = PART.match(text, pos)
        if not match:
            raise ValueError(f"not a duration: {text!r}")
        unit = match.group(2).lower()
        if order.index(unit) <= last:
            raise ValueError(f"units out of order or repeated in {text!r}")
        last = order.index(unit)
        seconds += int(match.group(1)) * UNITS[unit]
        pos = match.end()
    if last < 0:
        raise ValueError(f"not a duration: {text!r}")
    return seconds


def format_duration(seconds):
    """seconds (an int >= 0) written as a duration, e.g. 5400 -> '1h 30m'; ValueError if < 0."""
    if seconds < 0:
        raise ValueError("negative duration")
    parts = []
    for unit, size in UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


def total(texts):
    """The sum of the durations in texts (a list of strings), formatted."""
    return format_duration(sum(parse_duration(t) for t in texts))
