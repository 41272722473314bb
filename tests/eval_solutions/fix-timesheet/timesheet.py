"""Time-tracking entries to hours per project and per ISO week, and an invoice amount."""

from collections import defaultdict
from datetime import date


def parse_entry(line):
    """'2024-04-08 09:15-12:45 apollo' -> (date, minutes, project).

    The project name may contain spaces and is kept as written (stripped). An end time
    earlier than the start means the work ran past midnight. Returns (date, int, str).
    """
    day, span, project = line.split(" ", 2)
    start, end = span.split("-")
    minutes = (_minutes(end) - _minutes(start)) % (24 * 60)
    return date.fromisoformat(day), minutes, project.strip()


def _minutes(hhmm):
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def hours_by_project(entries):
    """{project: hours} with hours rounded to 2 decimals, projects sorted by name."""
    totals = defaultdict(int)
    for _, minutes, project in entries:
        totals[project] += minutes
    return {p: round(totals[p] / 60, 2) for p in sorted(totals)}


def hours_by_week(entries):
    """{'YYYY-Www': hours} keyed by ISO year and week (e.g. '2024-W15'), in week order."""
    totals = defaultdict(int)
    for day, minutes, _ in entries:
        year, week, _ = day.isocalendar()
        totals[f"{year}-W{week:02d}"] += minutes
    return {k: round(v / 60, 2) for k, v in sorted(totals.items())}


def invoice(entries, project, rate, rounding=15):
    """Amount to bill for project: each entry's minutes rounded UP to a multiple of rounding,
    summed, times rate per hour; rounded to 2 decimals."""
    billed = 0
    for _, minutes, name in entries:
        if name == project:
            billed += -(-minutes // rounding) * rounding
    return round(billed / 60 * rate, 2)
