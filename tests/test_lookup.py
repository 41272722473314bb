"""Prompt-lookup drafting: what it guesses, when it guesses nothing, how far it guesses."""

from __future__ import annotations

import numpy as np

from spud.models.lookup import PromptLookup


def ids(*tokens: int) -> np.ndarray:
    return np.array(tokens, dtype=np.intc)


def test_it_guesses_what_followed_the_latest_earlier_place_of_the_last_tokens():
    lookup = PromptLookup(ahead=16)
    # 5 6 7 occurs twice before the end: after it came 8 9 the first time, 1 2 the second
    guess = lookup(ids(5, 6, 7, 8, 9, 0, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7))
    assert guess.tolist() == [1, 2]  # the first guess is 2 tokens long


def test_no_guess_without_a_three_token_match():
    lookup = PromptLookup()
    assert lookup(ids(1, 2, 3, 4, 9, 3, 4)).size == 0  # "3 4" matches, "9 3 4" does not
    assert lookup(ids(7)).size == 0


def test_a_guess_taken_whole_doubles_the_next_one_and_a_miss_halves_it():
    lookup = PromptLookup(ahead=8)
    text = list(range(100, 140))
    prompt = [*text, 1, *text[:3]]  # the reply starts copying the text
    first = lookup(ids(*prompt))
    assert first.tolist() == text[3:5]
    # the model took both guessed tokens and added the one after them
    second = lookup(ids(*prompt, *text[3:6]))
    assert second.tolist() == text[6:10]  # 4 now
    third = lookup(ids(*prompt, *text[3:10], text[10]))
    assert len(third) == 8  # capped at ahead
    # the model left the copy after one guessed token: next time half as many
    lookup(ids(*prompt, *text[3:12], 7))
    after_miss = lookup(ids(*prompt, *text[3:12], 7, *text[12:15]))
    assert len(after_miss) == 4
    # taken: 2, 4, then 1 of 8 (the step that left the copy guessed nothing)
    assert lookup.taken == 2 + 4 + 1 and lookup.proposed == 2 + 4 + 8 + 4
