"""`spud eval`: suites of tasks with automatic checkers, BFCL scoring, stored runs, comparisons."""
