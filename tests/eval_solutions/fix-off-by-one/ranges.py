def count_up(n):
    """The numbers 1 to n, inclusive."""
    return list(range(1, n + 1))
