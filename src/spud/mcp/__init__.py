"""MCP both ways: a client that turns configured servers into a tool set, and Spud's server."""
