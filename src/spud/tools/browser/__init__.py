"""The browser tool set's parts: launch (Chromium, proxy), session, snapshot, tools."""
