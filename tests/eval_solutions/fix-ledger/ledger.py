"""A household ledger: parse transaction lines, sum them and summarise them by month."""

from collections import defaultdict


def parse_line(line):
    """Parse 'YYYY-MM-DD;category;amount' into a tuple (date, category, amount).

    Spaces around each field are ignored and the category is lowercased. The amount may use a
    comma as decimal separator ('-12,50'). Returns (str, str, float).
    """
    date, category, amount = line.split(";")
    return date.strip(), category.strip().lower(), float(amount.replace(",", "."))


def load(text):
    """Parse every line of text except empty lines and comment lines (starting with '#')."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append(parse_line(line))
    return out


def balance(transactions):
    """Sum of all amounts, rounded to 2 decimals."""
    return round(sum(t[2] for t in transactions), 2)


def by_month(transactions):
    """{'YYYY-MM': sum of that month's amounts, rounded to 2 decimals}, months in date order."""
    totals = defaultdict(float)
    for date, _, amount in sorted(transactions):
        totals[date[:7]] += amount
    return {month: round(total, 2) for month, total in totals.items()}


def top_spending(transactions, n=3):
    """The n categories that spent most, as (category, amount spent), largest first.

    Only negative amounts count as spending; the amount spent is given as a positive number
    rounded to 2 decimals. Categories that spent the same are ordered by name.
    """
    spent = defaultdict(float)
    for _, category, amount in transactions:
        if amount < 0:
            spent[category] += -amount
    ranked = sorted(spent.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(category, round(amount, 2)) for category, amount in ranked[:n]]


def between(transactions, start, end):
    """The transactions dated from start to end, both included (ISO date strings)."""
    return [t for t in transactions if start <= t[0] <= end]
