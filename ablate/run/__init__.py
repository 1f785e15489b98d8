"""Executing one planned run (``execute.py``): claim it in the runs database, train it, record
it, and tell the caller through ``hooks.py``."""
