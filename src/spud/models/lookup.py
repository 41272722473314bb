"""Prompt-lookup drafting: guess the next tokens from where the last few appeared before."""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_cpp.llama_speculative import LlamaDraftModel


class PromptLookup(LlamaDraftModel):
    """Drafts for speculative decoding taken from the text itself (no second model): find the
    latest earlier place where the last `longest`..`shortest` tokens occur and propose what
    followed them there. A reply that copies from its prompt (a file rewritten with a fix, an
    edit's SEARCH block, a kept docstring) then costs one decode per several tokens; the main
    model checks every guess. Checking a guess is not free on a CPU (16 tokens at once cost
    about 6 single decodes), so a guess grows while guesses are taken whole (up to `ahead`),
    shrinks after a miss, and is made only from a match of `shortest` tokens or more."""

    def __init__(self, ahead: int = 16, longest: int = 6, shortest: int = 3) -> None:
        self.ahead, self.longest, self.shortest = ahead, longest, shortest
        self.size = 2  # tokens guessed next time
        self.last: tuple[int, np.ndarray] | None = None  # where the last guess went, and it
        self.proposed = self.taken = 0

    def __call__(self, input_ids: Any, /, **kwargs: Any) -> np.ndarray:
        ids = np.asarray(input_ids)
        if self.last is not None:
            at, guess = self.last
            got = ids[at : at + len(guess)]
            taken = int(np.argmin(np.append(got == guess[: len(got)], False)))
            self.taken += taken
            whole = taken == len(guess)
            self.size = min(self.ahead, self.size * 2) if whole else max(1, self.size // 2)
            self.last = None
        for n in range(min(self.longest, len(ids) - 1), self.shortest - 1, -1):
            windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], n)
            starts = np.flatnonzero((windows == ids[-n:]).all(axis=1))
            if len(starts):
                after = int(starts[-1]) + n
                guess = ids[after : min(after + self.size, len(ids))].astype(np.intc)
                self.proposed += len(guess)
                self.last = (len(ids), guess)
                return guess
        return np.array([], dtype=np.intc)
