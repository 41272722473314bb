"""Tools the agent can call; each is a small class with typed arguments."""
