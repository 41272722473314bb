"""Spud: an open agent workspace that runs on an embedded local model."""

__version__ = "0.1.0"
