"""What models cost: list prices of remote models per million tokens; the config overrides them."""

from __future__ import annotations

from spud.config import Price
from spud.core.messages import Usage

# USD per million prompt / completion tokens, as the providers list them (2025). A name matches
# its key exactly or as KEY-suffix (a dated snapshot); the longest key wins. Models not listed
# (local ones, your own vLLM) cost nothing unless `[prices."NAME"]` in config.toml says so;
# their model seconds are counted either way.
PRICES: dict[str, Price] = {
    name: Price(input_per_mtok=cost_in, output_per_mtok=cost_out)
    for name, cost_in, cost_out in [
        ("openai:gpt-4o", 2.50, 10.00),
        ("openai:gpt-4o-mini", 0.15, 0.60),
        ("openai:gpt-4.1", 2.00, 8.00),
        ("openai:gpt-4.1-mini", 0.40, 1.60),
        ("openai:gpt-4.1-nano", 0.10, 0.40),
        ("openai:gpt-5", 1.25, 10.00),
        ("openai:gpt-5-mini", 0.25, 2.00),
        ("openai:gpt-5-nano", 0.05, 0.40),
        ("openai:o3", 2.00, 8.00),
        ("openai:o3-mini", 1.10, 4.40),
        ("openai:o4-mini", 1.10, 4.40),
        ("anthropic:claude-3-haiku", 0.25, 1.25),
        ("anthropic:claude-3-5-haiku", 0.80, 4.00),
        ("anthropic:claude-haiku-4-5", 1.00, 5.00),
        ("anthropic:claude-3-5-sonnet", 3.00, 15.00),
        ("anthropic:claude-3-7-sonnet", 3.00, 15.00),
        ("anthropic:claude-sonnet-4", 3.00, 15.00),
        ("anthropic:claude-opus-4", 15.00, 75.00),
        ("anthropic:claude-opus-4-5", 5.00, 25.00),
    ]
}


def price_of(model: str, overrides: dict[str, Price] | None = None) -> Price | None:
    """The price of a model by name: the config's entry first, then the list above; or None."""
    for table in (overrides or {}, PRICES):
        keys = [k for k in table if model == k or model.startswith(k + "-")]
        if keys:
            return table[max(keys, key=len)]
    return None


def cost_of(usage: Usage, price: Price | None) -> float:
    """What one model call cost: what the model reported, else its tokens and seconds priced."""
    if usage.cost_usd or price is None:
        return usage.cost_usd
    return (
        usage.prompt_tokens * price.input_per_mtok / 1e6
        + usage.completion_tokens * price.output_per_mtok / 1e6
        + usage.seconds * price.per_second
    )
