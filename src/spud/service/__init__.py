"""The service layer: the one Python API that every surface calls."""
