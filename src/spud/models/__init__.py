"""Model adapters: local llama.cpp, OpenAI-compatible, Anthropic, replay."""
