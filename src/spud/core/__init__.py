"""The agent core: the loop, its Protocols and the one message list."""
