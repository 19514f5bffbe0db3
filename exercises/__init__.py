"""Graded exercises, one folder per chapter: `python -m exercises grade 01`."""
