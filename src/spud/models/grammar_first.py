"""Grammar-constrained sampling that checks the model's pick first, as llama.cpp's server does."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama, LlamaGrammar
from llama_cpp._internals import LlamaContext, LlamaSampler

from spud.core.run import past_deadline
from spud.models.lookup import PromptLookup

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class GrammarFirstLlama(Llama):
    """llama-cpp-python's Llama, except that a grammar no longer masks the whole vocabulary
    (152k tokens for Qwen) before every token: the usual sampling chain picks a token, the
    grammar checks that one token, and only a rejected pick is sampled again from the
    grammar-masked vocabulary. What is sampled is the same: at temperature 0 the allowed
    token with the highest logit, as with the grammar in the chain (llama.cpp's own
    common_sampler and llama-server sample this way)."""

    def __init__(self, *args: Any, lookahead: int = 0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # Set here, not passed to Llama: Llama given a draft model keeps every prompt token's
        # logits (context x vocabulary floats, 5 GB at 8k tokens of Qwen); eval below keeps
        # only those of the guesses being checked.
        self.draft_model = PromptLookup(ahead=lookahead) if lookahead > 0 else None
        self.decodes = 0  # llama_decode calls for generated tokens (guesses checked at once)

    def eval(self, tokens: Sequence[int]) -> None:
        """As Llama.eval, except that a step checking drafted guesses gets the logits of every
        position it evaluates (the sampler reads each), and a prompt only its last; each step,
        and each batch of a prompt, first checks that the run's time is not up."""
        past_deadline()
        if len(tokens) > self.n_batch:
            for at in range(0, len(tokens), self.n_batch):
                past_deadline()
                super().eval(tokens[at : at + self.n_batch])
            return None
        if self.draft_model is None or len(tokens) > self.draft_model.ahead + 1:
            return super().eval(tokens)
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        self._batch.set_batch(batch=list(tokens), n_past=self.n_tokens, logits_all=True)
        self._ctx.decode(self._batch)
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self._requires_eval = False
        self.decodes += 1

    def _init_sampler(self, *args: Any, grammar: LlamaGrammar | None = None, **kw: Any) -> Any:
        chain = super()._init_sampler(*args, grammar=None, **kw)
        if grammar is None:
            return chain
        return GrammarFirstSampler(chain, self._model.vocab, grammar, self._n_vocab)


class GrammarFirstSampler:
    """A sampling chain with the grammar checked after it (what Llama.sample calls)."""

    def __init__(self, chain: LlamaSampler, vocab: Any, grammar: LlamaGrammar, n_vocab: int):
        self.chain = chain
        self.grammar = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not self.grammar:
            raise ValueError("llama.cpp could not parse the grammar")
        self.n_vocab = n_vocab
        self.ids = np.arange(n_vocab, dtype=np.int32)
        self.data = (llama_cpp.llama_token_data * n_vocab)()
        self.view = np.frombuffer(self.data, dtype=TOKEN_DATA)
        self.cur = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self.data, llama_cpp.llama_token_data_p), size=n_vocab
        )
        self.one_data = (llama_cpp.llama_token_data * 1)()
        self.one = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self.one_data, llama_cpp.llama_token_data_p), size=1
        )
        self.picks = 0
        self.rejected = 0  # picks the grammar turned down (then sampled from the masked list)

    def sample(self, ctx: LlamaContext, idx: int = -1) -> int:
        """The next token, accepted by the grammar and the chain (as llama_sampler_sample)."""
        logits = llama_cpp.llama_get_logits_ith(ctx.ctx, idx)
        token = self._pick(logits, masked=False)
        self.picks += 1
        if not self.allows(token):
            self.rejected += 1
            token = self._pick(logits, masked=True)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        self.chain.accept(token)
        return token

    def allows(self, token: int) -> bool:
        """Whether the grammar, in its present state, lets this token come next."""
        self.one_data[0].id, self.one_data[0].logit, self.one_data[0].p = token, 0.0, 0.0
        self.one.size, self.one.selected, self.one.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self.one))
        return self.one_data[0].logit != -math.inf

    def _pick(self, logits: Any, masked: bool) -> int:
        self.view["id"] = self.ids
        self.view["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self.cur.data = ctypes.cast(self.data, llama_cpp.llama_token_data_p)
        self.cur.size, self.cur.selected, self.cur.sorted = self.n_vocab, -1, False
        if masked:
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self.cur))
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(self.cur))
        if not 0 <= self.cur.selected < self.cur.size:
            raise RuntimeError("the sampling chain selected no token")
        return int(self.cur.data[self.cur.selected].id)

    def __del__(self) -> None:
        if getattr(self, "grammar", None):
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
